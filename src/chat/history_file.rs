//! The history file: every message of every room appended as one JSON line
//! (which names its room), written before it is broadcast, and reloaded
//! at start.
//!
//! At start the file's tail is reloaded; a last line torn by a crash is cut
//! off with a warning, so the next append starts on a clean line, and a line
//! that is not a message is skipped with a warning rather than refusing to
//! start.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;

use super::history::{HistoryStore, Recent};
use super::messages::{ChatMessage, ServerMessage};
use super::names::RoomName;

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

/// The history file: every room's messages as JSON lines, in the order
/// they were broadcast.
#[derive(Debug)]
pub struct FileStore {
    file: File,
    path: PathBuf,
    /// Length of the file up to the end of its last complete line.
    len: u64,
    fsync: bool,
}

/// What a history file held at start: each room's last messages, and the
/// highest id in the file, below which no new room numbers its messages.
#[derive(Debug, Default)]
pub struct Reloaded {
    pub rooms: HashMap<RoomName, Recent>,
    pub high: u64,
}

impl FileStore {
    /// A history backed by `path` (created if missing), and what it holds:
    /// each room's last `max` messages, for at most `max_rooms` rooms (the
    /// ones written to last). With `fsync`, every append is synced to the
    /// device before it counts as stored.
    pub fn open(
        path: &Path,
        fsync: bool,
        max: usize,
        max_rooms: usize,
    ) -> io::Result<(FileStore, Reloaded)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut reloaded = Reloaded::default();
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
            reloaded = load(BufReader::new(&mut file), path, max, max_rooms)?;
            file.seek(SeekFrom::End(0))?
        } else {
            log::warn!(
                "{}: not a regular file; no history reloaded from it",
                path.display()
            );
            0
        };
        let store = FileStore {
            file,
            path: path.to_owned(),
            len,
            fsync,
        };
        Ok((store, reloaded))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl HistoryStore for FileStore {
    fn append(&mut self, messages: &[Arc<str>]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(messages.iter().map(|j| j.len() + 1).sum());
        for json in messages {
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
        Ok(())
    }

    fn name(&self) -> &'static str {
        "history file"
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Read complete lines into their rooms; a line that is not a message is
/// skipped with a warning rather than refusing to start. A line without a
/// room (written before rooms) is the lobby's. Past `max_rooms` rooms, the
/// one written to longest ago is dropped from memory (it stays in the file).
fn load(
    mut reader: impl BufRead,
    path: &Path,
    max: usize,
    max_rooms: usize,
) -> io::Result<Reloaded> {
    let mut reloaded = Reloaded::default();
    let mut last_line: HashMap<RoomName, u64> = HashMap::new();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(reloaded);
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
        let msg = match serde_json::from_slice::<ChatMessage>(&line) {
            Ok(msg) => msg,
            Err(e) => {
                log::warn!("{}: line {line_no} skipped: {e}", path.display());
                continue;
            }
        };
        if !reloaded.rooms.contains_key(&msg.room) && reloaded.rooms.len() >= max_rooms.max(1) {
            let oldest = last_line
                .iter()
                .min_by_key(|(_, line)| **line)
                .map(|(room, _)| room.clone());
            if let Some(oldest) = oldest {
                reloaded.rooms.remove(&oldest);
                last_line.remove(&oldest);
            }
        }
        let recent = reloaded
            .rooms
            .entry(msg.room.clone())
            .or_insert_with(|| Recent::new(max, 1));
        if msg.id < recent.next_id() {
            log::warn!(
                "{}: line {line_no}: id {} out of order in {}, skipped",
                path.display(),
                msg.id,
                msg.room
            );
            continue;
        }
        reloaded.high = reloaded.high.max(msg.id);
        last_line.insert(msg.room.clone(), line_no);
        // Serialized again, so that a line from before rooms names its room.
        let json = ServerMessage::Message(&msg).to_json();
        recent.keep(&[(msg.id, json.into())]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::history::tests::message;
    use crate::chat::messages::User;

    fn json(room: &str, id: u64) -> String {
        let msg = ChatMessage {
            room: RoomName::parse(room).unwrap(),
            id,
            ts: 1,
            from: User {
                id: 1,
                name: "a".into(),
            },
            text: format!("m{id}"),
            nonce: None,
        };
        ServerMessage::Message(&msg).to_json()
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wschat-history-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    fn write_lines(path: &Path, lines: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        std::fs::write(path, &bytes).unwrap();
        bytes
    }

    #[test]
    fn a_bad_line_in_the_middle_is_skipped_not_the_rest() {
        let path = temp("middle");
        let bytes = write_lines(
            &path,
            &[
                json("lobby", 1).as_bytes(),
                json("lobby", 2).as_bytes(),
                b"\xff\xfe not json",
                json("lobby", 3).as_bytes(),
            ],
        );
        let (_, reloaded) = FileStore::open(&path, false, 100, 10).unwrap();
        let lobby = &reloaded.rooms[&RoomName::lobby()];
        assert_eq!(lobby.next_id(), 4);
        assert_eq!(lobby.since(None).len(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing is cut");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rooms_reload_apart_and_an_old_file_loads_into_the_lobby() {
        let path = temp("rooms");
        let old = r#"{"type":"message","id":1,"ts":1,"from":{"id":1,"name":"a"},"text":"old"}"#;
        write_lines(
            &path,
            &[
                old.as_bytes(),
                json("rust", 1).as_bytes(),
                json("lobby", 2).as_bytes(),
                json("rust", 2).as_bytes(),
                json("go", 7).as_bytes(),
            ],
        );
        let (_, reloaded) = FileStore::open(&path, false, 100, 2).unwrap();
        assert_eq!(reloaded.high, 7);
        assert!(
            !reloaded.rooms.contains_key(&RoomName::lobby()),
            "past two rooms, the one written to longest ago is dropped"
        );
        let rust = &reloaded.rooms[&RoomName::parse("rust").unwrap()];
        assert_eq!(rust.next_id(), 3);
        let (_, reloaded) = FileStore::open(&path, false, 100, 10).unwrap();
        let lobby = &reloaded.rooms[&RoomName::lobby()];
        assert_eq!(lobby.since(None).len(), 2);
        assert!(lobby.since(None)[0].contains(r#""room":"lobby","id":1,"#));
        assert!(lobby.since(None)[0].contains("old"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn reloads_and_cuts_a_torn_tail() {
        let path = temp("torn");
        let lobby = RoomName::lobby();
        {
            let (mut h, _) = FileStore::open(&path, false, 100, 10).unwrap();
            let recent = Recent::new(100, 1);
            let stored = recent.number(&lobby, vec![message("m1"), message("m2")]);
            let json: Vec<Arc<str>> = stored.into_iter().map(|(_, j)| j).collect();
            h.append(&json).unwrap();
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"type":"message","id":3,"ts""#).unwrap();
        drop(f);
        let (mut h, reloaded) = FileStore::open(&path, false, 100, 10).unwrap();
        let recent = &reloaded.rooms[&lobby];
        assert_eq!(recent.next_id(), 3, "ids go on after the reloaded ones");
        let stored = recent.number(&lobby, vec![message("m3")]);
        h.append(&[Arc::clone(&stored[0].1)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<ChatMessage>(l).is_ok())
        );
        std::fs::remove_file(&path).unwrap();
    }
}
