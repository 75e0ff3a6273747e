//! Reading a request (or response) head off a fresh connection: bounded in
//! size, in header count and in time, and found in linear time however it
//! trickles in (slowloris).

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

use super::HttpError;
use crate::ws::conn::timed_out;

/// Caps on a request head. Without them a peer can make us buffer and parse
/// without end (slowloris, header floods).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest request head in bytes, request line and headers together.
    pub max_head: usize,
    /// Most header lines.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// Finds the end of a request head in bytes that arrive in pieces.
///
/// Each byte is looked at once, however the head is split, so a head that
/// trickles in a byte at a time costs linear work, not quadratic.
#[derive(Debug, Default)]
pub struct HeadScanner {
    scanned: usize,
}

impl HeadScanner {
    /// Given everything received so far (`buf` only ever grows at the end),
    /// returns the head's length once the blank line that ends it is in.
    pub fn find_end(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<usize>, HttpError> {
        // A shorter buffer than last time breaks the contract; rescan it.
        let from = self.scanned.min(buf.len()).saturating_sub(3);
        let end = buf[from..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| from + i + 2)
            .into_iter()
            .chain(
                buf[from..]
                    .windows(3)
                    .position(|w| w == b"\n\r\n")
                    .map(|i| from + i + 3),
            )
            .min();
        self.scanned = buf.len();
        match end {
            Some(end) if end <= limits.max_head => Ok(Some(end)),
            Some(_) => Err(HttpError::HeadersTooLarge("request head too large")),
            None if buf.len() >= limits.max_head => {
                Err(HttpError::HeadersTooLarge("request head too large"))
            }
            None => Ok(None),
        }
    }
}

/// Read a request or response head from a fresh connection: bytes up to the
/// blank line, within `limits`, before `deadline`. Returns the head and any
/// bytes that came after it.
pub fn read_head(
    stream: &mut TcpStream,
    limits: &HeadLimits,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut scanner = HeadScanner::default();
    let mut buf = Vec::with_capacity(1024);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
        // Never more than one byte past the cap, so an oversized head is
        // refused without reading it all.
        let room = (limits.max_head + 1)
            .saturating_sub(buf.len())
            .clamp(1, 1024);
        let filled = buf.len();
        buf.resize(filled + room, 0);
        let read = stream.read(&mut buf[filled..]);
        buf.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Err(HeadError::Eof),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => {
                return Err(HeadError::Timeout);
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
        if let Some(end) = scanner.find_end(&buf, limits).map_err(HeadError::Http)? {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
    }
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The head breaks a limit; answer with this status.
    Http(HttpError),
    Timeout,
    Eof,
    Io(io::Error),
}
