//! Whether this node can reach Redis, as `/healthz` and the log tell it.
//!
//! Each of the bus's two connections — the writer's and the subscriber's —
//! has a [`Link`] state; the node is ready when both are up. A load
//! balancer that checks `/healthz` steers new clients around a node that is
//! not (503, with the reason).

use std::sync::Mutex;
use std::time::Instant;

/// One connection to Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet.
    Connecting,
    Up,
    /// Lost, and being retried; `why` is the last error.
    Down {
        why: String,
        since: Instant,
    },
}

/// Which connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Writer,
    Subscriber,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Subscriber => "subscriber",
        }
    }
}

/// Both links' states.
#[derive(Debug)]
pub struct Health {
    links: Mutex<[Link; 2]>,
    url: String,
}

impl Health {
    /// `url` as the log shows it, without a password.
    pub fn new(url: String) -> Health {
        for role in [Role::Writer, Role::Subscriber] {
            crate::metrics::get().bus.link(role as usize, false);
        }
        Health {
            links: Mutex::new([Link::Connecting, Link::Connecting]),
            url,
        }
    }

    /// A link changed; the change is logged once.
    pub fn set(&self, role: Role, link: Link) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut links[role as usize];
        crate::metrics::get()
            .bus
            .link(role as usize, matches!(link, Link::Up));
        match (&*slot, &link) {
            (Link::Up, Link::Up) | (Link::Down { .. }, Link::Down { .. }) => {}
            (_, Link::Up) => log::info!("redis {}: {} connected", self.url, role.name()),
            (_, Link::Down { why, .. }) => {
                log::error!("redis {}: {} lost: {why}; retrying", self.url, role.name())
            }
            (_, Link::Connecting) => {}
        }
        if !matches!((&*slot, &link), (Link::Down { .. }, Link::Down { .. })) {
            *slot = link;
        }
    }

    /// `None` when ready, else why not: each link that is not up, and its
    /// last error as Redis or the socket gave it (refused, timed out,
    /// `WRONGPASS`, ...), not a guess at the cause.
    pub fn unready(&self) -> Option<String> {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let why: Vec<String> = [Role::Writer, Role::Subscriber]
            .iter()
            .filter_map(|&role| match &links[role as usize] {
                Link::Up => None,
                Link::Connecting => Some(format!("{}: connecting", role.name())),
                Link::Down { why, since } => Some(format!(
                    "{}: down for {:.0?}: {why}",
                    role.name(),
                    since.elapsed()
                )),
            })
            .collect();
        (!why.is_empty()).then(|| format!("redis {}: {}", self.url, why.join("; ")))
    }
}

/// A Redis URL without its password, for the log.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_both_links_up() {
        let h = Health::new("redis://127.0.0.1:1".into());
        assert!(h.unready().unwrap().contains("writer: connecting"));
        h.set(Role::Writer, Link::Up);
        h.set(Role::Subscriber, Link::Up);
        assert_eq!(h.unready(), None);
        let since = Instant::now();
        h.set(
            Role::Subscriber,
            Link::Down {
                why: "refused".into(),
                since,
            },
        );
        h.set(
            Role::Subscriber,
            Link::Down {
                why: "again".into(),
                since: Instant::now(),
            },
        );
        let why = h.unready().unwrap();
        assert!(
            why.contains("subscriber: down for") && why.contains("refused"),
            "{why}"
        );
    }

    #[test]
    fn passwords_stay_out_of_the_log() {
        assert_eq!(
            redacted("redis://:secret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
