//! The refuser: one thread that answers every connection refused at the
//! caps, so that connections over the caps cost no thread each.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::http::HttpError;

/// Answers connections refused at the caps, without waiting for their
/// request, on one thread for all of them. Each answered connection is
/// kept for a moment (draining what the client sends, so that closing does
/// not turn into a reset that destroys the answer), up to a bound; beyond
/// it the oldest are closed early, and when even the hand-over queue is
/// full a connection is closed unanswered. Either way a flood of refused
/// connections costs a bounded number of sockets and no threads.
pub(super) struct Refuser {
    queue: Option<crossbeam_channel::Sender<(TcpStream, HttpError)>>,
}

/// Refused connections held at once, answered and draining.
const REFUSED_HELD: usize = 1024;
/// How long a refused connection is drained before it is closed.
const REFUSED_LINGER: Duration = Duration::from_millis(500);
/// How often held connections are drained.
const REFUSER_TICK: Duration = Duration::from_millis(20);

impl Refuser {
    pub(super) fn start() -> Refuser {
        let (queue, incoming) = crossbeam_channel::bounded(REFUSED_HELD);
        let started = std::thread::Builder::new()
            .name("refuser".into())
            .stack_size(64 * 1024)
            .spawn(move || refuser_run(&incoming));
        match started {
            Ok(_) => Refuser { queue: Some(queue) },
            Err(e) => {
                log::warn!(
                    "cannot start the refuser thread ({e}); refused connections are closed unanswered"
                );
                Refuser { queue: None }
            }
        }
    }

    pub(super) fn refuse(&self, stream: TcpStream, refusal: HttpError) {
        if let Some(queue) = &self.queue {
            // Full: dropped, closing it unanswered.
            let _ = queue.try_send((stream, refusal));
        }
    }
}

fn refuser_run(incoming: &crossbeam_channel::Receiver<(TcpStream, HttpError)>) {
    let mut held: VecDeque<(TcpStream, Instant)> = VecDeque::new();
    let mut scratch = [0u8; 1024];
    loop {
        let first = if held.is_empty() {
            match incoming.recv() {
                Ok(refused) => Some(refused),
                Err(_) => return, // the server is gone, and nothing is held
            }
        } else {
            match incoming.recv_timeout(REFUSER_TICK) {
                Ok(refused) => Some(refused),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(REFUSER_TICK);
                    None
                }
            }
        };
        for (mut stream, refusal) in first.into_iter().chain(incoming.try_iter()) {
            // A fresh socket's send buffer takes the short answer whole.
            if stream.set_nonblocking(true).is_ok() {
                let _ = stream.write(&refusal.response());
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            if held.len() == REFUSED_HELD {
                held.pop_front();
            }
            held.push_back((stream, Instant::now() + REFUSED_LINGER));
        }
        let now = Instant::now();
        held.retain_mut(|(stream, until)| now < *until && drain_nonblocking(stream, &mut scratch));
    }
}

/// Read what a non-blocking socket has (a bounded amount); `false` once the
/// peer has closed it.
fn drain_nonblocking(stream: &mut TcpStream, scratch: &mut [u8]) -> bool {
    for _ in 0..16 {
        match stream.read(scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}
