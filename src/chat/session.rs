//! Sessions: who owns a name, across connections and reconnections.
//!
//! A session is one user: a name (unique on the server, compared
//! case-insensitively), a random token that lets a client come back as it,
//! and the connections it has now — several tabs or devices with the same
//! token are one user. When its last connection closes the session enters
//! its grace: it keeps its name and its place in its rooms (nobody sees it
//! leave), and DMs sent to it are held. A connection with its token inside
//! the grace takes it up again as if nothing happened; after the grace the
//! session ends, its leaves are announced and its name is free.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::messages::User;
use super::names::{RoomName, first_free, name_key};

/// Most DMs held for a session in its grace; older ones are dropped.
pub const MAX_HELD_DMS: usize = 100;

/// A session's secret: 128 random bits from the OS, as 32 hex digits. Its
/// `Debug` does not show it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Token {
    /// What other nodes of a cluster know a session by: the SHA-1 of its
    /// token, so the token itself never leaves this node.
    pub fn hash(token: &str) -> String {
        use sha1::Digest;
        sha1::Sha1::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Where tokens come from: the OS's random device.
pub struct TokenSource(File);

impl TokenSource {
    pub fn open() -> io::Result<TokenSource> {
        File::open("/dev/urandom").map(TokenSource)
    }

    fn next(&mut self) -> io::Result<Token> {
        let mut bytes = [0u8; 16];
        self.0.read_exact(&mut bytes)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }
}

/// A session's life.
#[derive(Debug)]
pub enum Life {
    /// It has these connections.
    Live { conns: HashSet<u64> },
    /// Its last connection closed; it ends at `until` unless one comes
    /// back. `rooms` are where it was, with the last id delivered there,
    /// `held` the DMs sent to it since.
    Grace {
        until: Instant,
        rooms: Vec<(RoomName, u64)>,
        held: VecDeque<Arc<str>>,
    },
}

#[derive(Debug)]
pub struct Session {
    pub user: User,
    pub token: Token,
    /// The rooms where it is present (in a room's presence list).
    pub rooms: HashSet<RoomName>,
    pub life: Life,
}

impl Session {
    /// Its connections; none in its grace.
    pub fn conns(&self) -> impl Iterator<Item = u64> + '_ {
        let conns = match &self.life {
            Life::Live { conns } => Some(conns.iter().copied()),
            Life::Grace { .. } => None,
        };
        conns.into_iter().flatten()
    }
}

/// What resuming a session found.
pub enum Resumed {
    /// It had other connections: this one joins them.
    Joined,
    /// It was in its grace: where it was, and the DMs held for it.
    FromGrace {
        rooms: Vec<(RoomName, u64)>,
        held: VecDeque<Arc<str>>,
    },
}

/// Every session, by user id, by token and by name.
pub struct Sessions {
    by_id: HashMap<u64, Session>,
    by_token: HashMap<Token, u64>,
    by_name: HashMap<String, u64>,
    /// Sessions in their grace, in the order it ends (the grace is the same
    /// for all); an entry whose session came back is stale and skipped.
    ending: VecDeque<(Instant, u64)>,
    grace: Duration,
    tokens: TokenSource,
    next_id: u64,
}

impl Sessions {
    /// Sessions whose user ids start at `first_id` (in a cluster each node
    /// has ids of its own).
    pub fn new(grace: Duration, tokens: TokenSource, first_id: u64) -> Sessions {
        Sessions {
            by_id: HashMap::new(),
            by_token: HashMap::new(),
            by_name: HashMap::new(),
            ending: VecDeque::new(),
            grace,
            tokens,
            next_id: first_id.max(1),
        }
    }

    pub fn get(&self, id: u64) -> Option<&Session> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Session> {
        self.by_id.get_mut(&id)
    }

    /// The user id the next new session gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The session that owns `name`, compared case-insensitively.
    pub fn by_name(&self, name: &str) -> Option<&Session> {
        self.by_name
            .get(&name_key(name))
            .and_then(|id| self.by_id.get(id))
    }

    /// Is `name` free for the session `id` (`None`: a new one)?
    pub fn name_free(&self, name: &str, id: Option<u64>) -> bool {
        self.by_name
            .get(&name_key(name))
            .is_none_or(|owner| Some(*owner) == id)
    }

    /// A new live session for `conn`, named `name` — or, when that is
    /// `None`, `guest-<id>` (with a suffix if someone took that name).
    /// The caller has checked that `name` is free.
    pub fn create(&mut self, conn: u64, name: Option<String>) -> io::Result<&Session> {
        let token = self.tokens.next()?;
        let id = self.next_id;
        self.next_id += 1;
        let name =
            name.unwrap_or_else(|| first_free(&format!("guest-{id}"), |n| self.name_free(n, None)));
        self.by_name.insert(name_key(&name), id);
        self.by_token.insert(token.clone(), id);
        let session = Session {
            user: User { id, name },
            token,
            rooms: HashSet::new(),
            life: Life::Live {
                conns: HashSet::from([conn]),
            },
        };
        Ok(self.by_id.entry(id).or_insert(session))
    }

    /// A live session for `conn` that another node of the cluster held:
    /// the same user, name and token.
    pub fn adopt(&mut self, conn: u64, user: User, token: &str) -> &Session {
        let id = user.id;
        let token = Token(token.to_owned());
        self.by_name.insert(name_key(&user.name), id);
        self.by_token.insert(token.clone(), id);
        let session = Session {
            user,
            token,
            rooms: HashSet::new(),
            life: Life::Live {
                conns: HashSet::from([conn]),
            },
        };
        self.by_id.insert(id, session);
        &self.by_id[&id]
    }

    /// Session `id` is taken up elsewhere (another node): it ends here
    /// without its end being announced.
    pub fn remove(&mut self, id: u64) -> Option<Session> {
        let session = self.by_id.remove(&id)?;
        self.by_token.remove(&session.token);
        self.by_name.remove(&name_key(&session.user.name));
        Some(session)
    }

    /// Every session.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.by_id.values()
    }

    /// `conn` comes with `token`: the session it names takes it, if the
    /// session still lives.
    pub fn resume(&mut self, token: &str, conn: u64) -> Option<(u64, Resumed)> {
        let id = *self.by_token.get(&Token(token.to_owned()))?;
        let session = self.by_id.get_mut(&id)?;
        let resumed = match &mut session.life {
            Life::Live { conns } => {
                conns.insert(conn);
                Resumed::Joined
            }
            Life::Grace { rooms, held, .. } => {
                let resumed = Resumed::FromGrace {
                    rooms: std::mem::take(rooms),
                    held: std::mem::take(held),
                };
                session.life = Life::Live {
                    conns: HashSet::from([conn]),
                };
                resumed
            }
        };
        Some((id, resumed))
    }

    /// `id` is now called `name` (the caller has checked it is free).
    pub fn rename(&mut self, id: u64, name: String) -> Option<String> {
        let session = self.by_id.get_mut(&id)?;
        self.by_name.remove(&name_key(&session.user.name));
        self.by_name.insert(name_key(&name), id);
        Some(std::mem::replace(&mut session.user.name, name))
    }

    /// `conn` of session `id` closed. `true` when it was the last: the
    /// session is in its grace now, `rooms` being where it was.
    pub fn disconnect(&mut self, id: u64, conn: u64, rooms: Vec<(RoomName, u64)>) -> bool {
        let Some(session) = self.by_id.get_mut(&id) else {
            return false;
        };
        let Life::Live { conns } = &mut session.life else {
            return false;
        };
        conns.remove(&conn);
        if !conns.is_empty() {
            return false;
        }
        let until = Instant::now() + self.grace;
        session.life = Life::Grace {
            until,
            rooms,
            held: VecDeque::new(),
        };
        self.ending.push_back((until, id));
        true
    }

    /// Hold a DM for a session in its grace.
    pub fn hold(&mut self, id: u64, dm: &Arc<str>) {
        if let Some(Session {
            life: Life::Grace { held, .. },
            ..
        }) = self.by_id.get_mut(&id)
        {
            if held.len() == MAX_HELD_DMS {
                held.pop_front();
            }
            held.push_back(Arc::clone(dm));
        }
    }

    /// When the next grace ends.
    pub fn next_end(&self) -> Option<Instant> {
        self.ending.front().map(|(until, _)| *until)
    }

    /// End every session whose grace is over at `now`, and return them.
    pub fn end_graces(&mut self, now: Instant) -> Vec<Session> {
        let mut ended = Vec::new();
        while let Some(&(until, id)) = self.ending.front() {
            if until > now {
                break;
            }
            self.ending.pop_front();
            let over = matches!(
                self.by_id.get(&id),
                Some(Session { life: Life::Grace { until: u, .. }, .. }) if *u == until
            );
            if over && let Some(session) = self.by_id.remove(&id) {
                self.by_token.remove(&session.token);
                self.by_name.remove(&name_key(&session.user.name));
                ended.push(session);
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(grace: Duration) -> Sessions {
        Sessions::new(grace, TokenSource::open().unwrap(), 1)
    }

    #[test]
    fn tokens_are_random_and_hidden_from_debug() {
        let mut s = sessions(Duration::from_secs(1));
        let a = s.create(1, Some("a".into())).unwrap().token.clone();
        let b = s.create(2, Some("b".into())).unwrap().token.clone();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn a_name_belongs_to_its_session_until_the_grace_ends() {
        let mut s = sessions(Duration::ZERO);
        let token = s.create(1, Some("Alice".into())).unwrap().token.clone();
        assert!(!s.name_free("alice", None));
        assert!(s.name_free("ALICE", Some(1)));
        assert!(s.disconnect(1, 1, vec![]));
        assert!(!s.name_free("alice", None), "kept in the grace");
        let (id, resumed) = s.resume(token.as_str(), 2).unwrap();
        assert!(matches!(resumed, Resumed::FromGrace { .. }));
        assert_eq!(id, 1);
        assert!(s.end_graces(Instant::now()).is_empty(), "it came back");
        assert!(s.disconnect(1, 2, vec![]));
        let ended = s.end_graces(Instant::now() + Duration::from_millis(1));
        assert_eq!(ended.len(), 1);
        assert!(s.name_free("alice", None));
        assert!(s.resume(token.as_str(), 3).is_none());
    }

    #[test]
    fn guests_never_take_a_chosen_name() {
        let mut s = sessions(Duration::ZERO);
        s.create(1, Some("guest-2".into())).unwrap();
        let guest = s.create(2, None).unwrap();
        assert_eq!(guest.user.name, "guest-2-2");
    }
}
