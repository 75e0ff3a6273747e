//! Typing notices: forwarded, never stored, and at most one per user and
//! place (a room or a DM conversation) every [`TYPING_EVERY`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::protocol::TypingIn;

/// Least time between two forwarded typing notices of one user in one place.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Most places remembered; past it, those older than [`TYPING_EVERY`] are
/// forgotten, and if none is, everything is.
const MAX_PLACES: usize = 4096;

#[derive(Default)]
pub struct TypingThrottle {
    last: HashMap<(u64, TypingIn), Instant>,
}

impl TypingThrottle {
    /// Should `user`'s notice for `place` be forwarded at `now`?
    pub fn allow(&mut self, user: u64, place: &TypingIn, now: Instant) -> bool {
        let key = (user, place.clone());
        if let Some(last) = self.last.get(&key)
            && now.saturating_duration_since(*last) < TYPING_EVERY
        {
            return false;
        }
        if self.last.len() >= MAX_PLACES {
            self.last
                .retain(|_, last| now.saturating_duration_since(*last) < TYPING_EVERY);
            if self.last.len() >= MAX_PLACES {
                self.last.clear();
            }
        }
        self.last.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::names::RoomName;

    #[test]
    fn one_notice_per_user_and_place_every_two_seconds() {
        let mut t = TypingThrottle::default();
        let now = Instant::now();
        let rust = TypingIn::Room(RoomName::parse("rust").unwrap());
        let dm = TypingIn::Dm("bob".into());
        assert!(t.allow(1, &rust, now));
        assert!(!t.allow(1, &rust, now + Duration::from_millis(1999)));
        assert!(t.allow(1, &dm, now), "another place");
        assert!(t.allow(2, &rust, now), "another user");
        assert!(t.allow(1, &rust, now + TYPING_EVERY));
    }
}
