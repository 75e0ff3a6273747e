//! A connection's outgoing data queue: bounded in the number of items, but
//! allocating only for the items actually queued.
//!
//! A fixed-capacity channel reserves its whole capacity up front — at a
//! thousand frames per client that alone is ~40 KiB for every idle
//! connection. Here the items live in an unbounded (linked-block) channel
//! and the bound is a count: [`QueueSender::try_send`] refuses an item
//! beyond it (a chat hub's "too slow" signal) and [`QueueSender::send`]
//! waits for room.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::{self as channel, Receiver, Sender};

#[derive(Debug)]
struct QueueState {
    capacity: usize,
    queued: AtomicUsize,
    /// The receiving side is gone.
    closed: AtomicBool,
    /// Blocked senders wait here for room.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    room: Condvar,
}

/// Why an item was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrySend {
    /// `capacity` items are waiting: the peer reads more slowly than we send.
    Full,
    /// The connection's writer is gone.
    Disconnected,
}

#[derive(Debug)]
pub struct QueueSender<T> {
    tx: Sender<T>,
    shared: Arc<QueueState>,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        QueueSender {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
pub struct QueueReceiver<T> {
    rx: Receiver<T>,
    shared: Arc<QueueState>,
}

/// A queue holding at most `capacity` items (at least one).
pub fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let (tx, rx) = channel::unbounded();
    let shared = Arc::new(QueueState {
        capacity: capacity.max(1),
        queued: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        waiters: AtomicUsize::new(0),
        lock: Mutex::new(()),
        room: Condvar::new(),
    });
    (
        QueueSender {
            tx,
            shared: Arc::clone(&shared),
        },
        QueueReceiver { rx, shared },
    )
}

impl<T> QueueSender<T> {
    /// Items queued and not yet reported [`QueueReceiver::taken`].
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Queue `item` unless the queue is full or closed.
    pub fn try_send(&self, item: T) -> Result<(), TrySend> {
        self.try_send_returning(item).map_err(|(why, _)| why)
    }

    /// Queue `item`, waiting while the queue is full.
    pub fn send(&self, mut item: T) -> Result<(), TrySend> {
        loop {
            match self.try_send_returning(item) {
                Ok(()) => return Ok(()),
                Err((TrySend::Disconnected, _)) => return Err(TrySend::Disconnected),
                Err((TrySend::Full, back)) => item = back,
            }
            self.shared.waiters.fetch_add(1, Ordering::AcqRel);
            let guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.shared.queued.load(Ordering::Acquire) >= self.shared.capacity
                && !self.shared.closed.load(Ordering::Acquire)
            {
                // The timeout only bounds the cost of a missed wake-up.
                let _ = self
                    .shared
                    .room
                    .wait_timeout(guard, Duration::from_millis(50));
            }
            self.shared.waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn try_send_returning(&self, item: T) -> Result<(), (TrySend, T)> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err((TrySend::Disconnected, item));
        }
        // Reserve a place first, so that concurrent senders cannot together
        // overshoot the bound.
        if self.shared.queued.fetch_add(1, Ordering::AcqRel) >= self.shared.capacity {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err((TrySend::Full, item));
        }
        self.tx.send(item).map_err(|e| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            (TrySend::Disconnected, e.into_inner())
        })
    }
}

impl<T> QueueReceiver<T> {
    /// The channel, for `select!`. Every item taken from it must be reported
    /// with [`QueueReceiver::taken`].
    pub fn channel(&self) -> &Receiver<T> {
        &self.rx
    }

    /// `n` items were taken off: make room for senders.
    pub fn taken(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        if self.shared.waiters.load(Ordering::Acquire) > 0 {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.room.notify_all();
        }
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count() {
        let (tx, rx) = queue(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(TrySend::Full));
        assert_eq!(rx.channel().try_recv(), Ok(1));
        rx.taken(1);
        assert_eq!(tx.try_send(3), Ok(()));
    }

    #[test]
    fn blocking_send_waits_for_room() {
        let (tx, rx) = queue(1);
        tx.send(1).unwrap();
        let sender = std::thread::spawn(move || tx.send(2));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(rx.channel().recv(), Ok(1));
        rx.taken(1);
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(rx.channel().recv(), Ok(2));
    }

    #[test]
    fn dropping_the_receiver_disconnects_waiting_senders() {
        let (tx, rx) = queue(1);
        tx.send(1).unwrap();
        let sender = std::thread::spawn(move || tx.send(2));
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
        assert_eq!(sender.join().unwrap(), Err(TrySend::Disconnected));
    }
}
