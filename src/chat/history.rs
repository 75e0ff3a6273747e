//! Message history: the last N messages in memory, and optionally every
//! message appended to a file of JSON lines.
//!
//! A message is written to the file *before* it is broadcast, so one that any
//! client has received is on disk (in the kernel's cache; with `fsync`, on
//! the device) even if the process is killed right after. At start the file's
//! tail is reloaded; a last line torn by a crash is cut off with a warning,
//! so the next append starts on a clean line.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::protocol::ChatMessage;

/// Longest line reloaded from a history file.
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// Where the file's last complete line ends: anything after the last
/// newline is a write torn by a crash.
fn end_of_last_line(file: &mut File) -> io::Result<u64> {
    let mut end = file.metadata()?.len();
    let mut block = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Consume the rest of an over-long line.
fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// A kept message: its id and its JSON, serialized once (by the hub when
/// it was sent, or read back from the file).
#[derive(Debug)]
struct Entry {
    id: u64,
    json: String,
}

#[derive(Debug)]
pub struct History {
    kept: VecDeque<Entry>,
    max: usize,
    next_id: u64,
    file: Option<HistoryFile>,
}

#[derive(Debug)]
struct HistoryFile {
    file: File,
    path: PathBuf,
    /// Length of the file up to the end of its last complete line.
    len: u64,
    fsync: bool,
}

impl History {
    /// An in-memory history of at most `max` messages.
    pub fn in_memory(max: usize) -> History {
        History {
            kept: VecDeque::new(),
            max,
            next_id: 1,
            file: None,
        }
    }

    /// A history backed by `path` (created if missing). With `fsync`, every
    /// append is synced to the device before it counts as stored.
    pub fn open(max: usize, path: &Path, fsync: bool) -> io::Result<History> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut history = History::in_memory(max);
        let len = if file.metadata()?.is_file() {
            let len = end_of_last_line(&mut file)?;
            if file.metadata()?.len() != len {
                log::warn!(
                    "{}: last line is incomplete (torn by a crash?); {} bytes cut off",
                    path.display(),
                    file.metadata()?.len() - len
                );
                file.set_len(len)?;
            }
            file.seek(SeekFrom::Start(0))?;
            history.load(BufReader::new(&mut file), path)?;
            file.seek(SeekFrom::End(0))?
        } else {
            log::warn!(
                "{}: not a regular file; no history reloaded from it",
                path.display()
            );
            0
        };
        history.file = Some(HistoryFile {
            file,
            path: path.to_owned(),
            len,
            fsync,
        });
        Ok(history)
    }

    /// Read complete lines; a line that is not a message is skipped with a
    /// warning rather than refusing to start.
    fn load(&mut self, mut reader: impl BufRead, path: &Path) -> io::Result<()> {
        let mut line = Vec::new();
        let mut line_no = 0u64;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            line_no += 1;
            if line.last() != Some(&b'\n') {
                log::warn!(
                    "{}: line {line_no} is longer than {MAX_LINE} bytes; skipped",
                    path.display()
                );
                skip_line(&mut reader)?;
                continue;
            }
            line.pop();
            match serde_json::from_slice::<ChatMessage>(&line) {
                Ok(msg) if msg.id >= self.next_id => {
                    // It parsed as a message, so it is UTF-8 JSON.
                    let json = String::from_utf8(std::mem::take(&mut line))
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    self.keep(msg.id, json);
                }
                Ok(msg) => log::warn!(
                    "{}: line {line_no}: id {} out of order, skipped",
                    path.display(),
                    msg.id
                ),
                Err(e) => log::warn!("{}: line {line_no} skipped: {e}", path.display()),
            }
        }
    }

    /// The id the next message will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Store a batch of messages, given with their JSON: one write (and one
    /// sync) for the whole batch. Once it is stored, `stored` sees each
    /// message (the hub broadcasts it from there) before it is kept. On error
    /// nothing is kept, the file is cut back to where it was, and the ids are
    /// not used up.
    pub fn append(
        &mut self,
        batch: Vec<(u64, String)>,
        mut stored: impl FnMut(&str),
    ) -> io::Result<()> {
        if let Some(hf) = &mut self.file {
            let mut bytes = Vec::with_capacity(batch.iter().map(|(_, j)| j.len() + 1).sum());
            for (_, json) in &batch {
                bytes.extend_from_slice(json.as_bytes());
                bytes.push(b'\n');
            }
            let written = hf.file.write_all(&bytes).and_then(|()| {
                if hf.fsync {
                    hf.file.sync_data()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                // A partial line would corrupt the next append: cut it off.
                let _ = hf.file.set_len(hf.len);
                return Err(e);
            }
            hf.len += bytes.len() as u64;
        }
        for (id, json) in batch {
            stored(&json);
            self.keep(id, json);
        }
        Ok(())
    }

    fn keep(&mut self, id: u64, json: String) {
        self.next_id = id + 1;
        if self.max == 0 {
            return;
        }
        if self.kept.len() == self.max {
            self.kept.pop_front();
        }
        self.kept.push_back(Entry { id, json });
    }

    /// What a joining client is sent: the messages after `resume` when it
    /// says where it left off, else everything kept.
    pub fn since(&self, resume: Option<u64>) -> Vec<&str> {
        let after = resume.unwrap_or(0);
        let start = self.kept.partition_point(|e| e.id <= after);
        self.kept.range(start..).map(|e| e.json.as_str()).collect()
    }

    /// Sync the file to the device (at shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(hf) => hf.file.sync_all(),
            None => Ok(()),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|hf| hf.path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{ServerMessage, User};

    fn json(id: u64) -> (u64, String) {
        let msg = ChatMessage {
            id,
            ts: 1,
            from: User {
                id: 1,
                name: "a".into(),
            },
            text: format!("m{id}"),
            nonce: None,
        };
        (id, ServerMessage::Message(&msg).to_json())
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wschat-history-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn keeps_the_last_n_and_resumes_after_an_id() {
        let mut h = History::in_memory(3);
        for id in 1..=5 {
            h.append(vec![json(id)], |_| {}).unwrap();
        }
        let ids = |v: Vec<&str>| v.join("|");
        assert!(ids(h.since(None)).contains("m3"));
        assert!(!ids(h.since(None)).contains("m2"));
        assert_eq!(h.since(Some(4)).len(), 1);
        assert_eq!(h.since(Some(5)).len(), 0);
        assert_eq!(h.next_id(), 6);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_skipped_not_the_rest() {
        let path = temp("middle");
        let mut bytes = Vec::new();
        for (id, json) in [json(1), json(2)] {
            let _ = id;
            bytes.extend_from_slice(json.as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"\xff\xfe not json\n");
        bytes.extend_from_slice(json(3).1.as_bytes());
        bytes.push(b'\n');
        std::fs::write(&path, &bytes).unwrap();
        let h = History::open(100, &path, false).unwrap();
        assert_eq!(h.next_id(), 4);
        assert_eq!(h.since(None).len(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing is cut");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn reloads_and_cuts_a_torn_tail() {
        let path = temp("torn");
        {
            let mut h = History::open(100, &path, false).unwrap();
            h.append(vec![json(1), json(2)], |_| {}).unwrap();
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"type":"message","id":3,"ts""#).unwrap();
        drop(f);
        let mut h = History::open(100, &path, false).unwrap();
        assert_eq!(h.next_id(), 3);
        h.append(vec![json(3)], |_| {}).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<ChatMessage>(l).is_ok())
        );
        std::fs::remove_file(&path).unwrap();
    }
}
