//! The history file: every message appended as one JSON line, written
//! before it is broadcast, and reloaded at start.
//!
//! At start the file's tail is reloaded; a last line torn by a crash is cut
//! off with a warning, so the next append starts on a clean line, and a line
//! that is not a message is skipped with a warning rather than refusing to
//! start.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::history::{HistoryStore, NewMessage, Recent};
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

/// History backed by a JSON-lines file, with the last N kept in memory.
#[derive(Debug)]
pub struct FileStore {
    recent: Recent,
    file: File,
    path: PathBuf,
    /// Length of the file up to the end of its last complete line.
    len: u64,
    fsync: bool,
}

impl FileStore {
    /// A history backed by `path` (created if missing), keeping `max` in
    /// memory. With `fsync`, every append is synced to the device before it
    /// counts as stored.
    pub fn open(max: usize, path: &Path, fsync: bool) -> io::Result<FileStore> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut recent = Recent::new(max);
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
            load(&mut recent, BufReader::new(&mut file), path)?;
            file.seek(SeekFrom::End(0))?
        } else {
            log::warn!(
                "{}: not a regular file; no history reloaded from it",
                path.display()
            );
            0
        };
        Ok(FileStore {
            recent,
            file,
            path: path.to_owned(),
            len,
            fsync,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl HistoryStore for FileStore {
    fn append(&mut self, messages: Vec<NewMessage>) -> io::Result<Vec<Arc<str>>> {
        let stored = self.recent.number(messages);
        let mut bytes = Vec::with_capacity(stored.iter().map(|(_, j)| j.len() + 1).sum());
        for (_, json) in &stored {
            bytes.extend_from_slice(json.as_bytes());
            bytes.push(b'\n');
        }
        let written = self.file.write_all(&bytes).and_then(|()| {
            if self.fsync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // A partial line would corrupt the next append: cut it off.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.recent.keep(&stored);
        Ok(stored.into_iter().map(|(_, json)| json).collect())
    }

    fn since(&self, after: Option<u64>) -> Vec<&str> {
        self.recent.since(after)
    }

    fn next_id(&self) -> u64 {
        self.recent.next_id()
    }

    fn name(&self) -> &'static str {
        "history file"
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Read complete lines; a line that is not a message is skipped with a
/// warning rather than refusing to start.
fn load(recent: &mut Recent, mut reader: impl BufRead, path: &Path) -> io::Result<()> {
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
            Ok(msg) if msg.id >= recent.next_id() => {
                // It parsed as a message, so it is UTF-8 JSON.
                let json = String::from_utf8(std::mem::take(&mut line))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                recent.keep(&[(msg.id, json.into())]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::history::tests::message;
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
        let h = FileStore::open(100, &path, false).unwrap();
        assert_eq!(h.next_id(), 4);
        assert_eq!(h.since(None).len(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing is cut");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn reloads_and_cuts_a_torn_tail() {
        let path = temp("torn");
        {
            let mut h = FileStore::open(100, &path, false).unwrap();
            h.append(vec![message("m1"), message("m2")]).unwrap();
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"type":"message","id":3,"ts""#).unwrap();
        drop(f);
        let mut h = FileStore::open(100, &path, false).unwrap();
        assert_eq!(h.next_id(), 3);
        let stored = h.append(vec![message("m3")]).unwrap();
        assert!(
            stored[0].contains(r#""id":3,"#),
            "ids go on after the reloaded ones"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<ChatMessage>(l).is_ok())
        );
        std::fs::remove_file(&path).unwrap();
    }
}
