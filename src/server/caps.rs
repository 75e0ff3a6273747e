//! The connection caps: open connections counted in total and per
//! address, taken as a connection is accepted and released however it
//! ends; and the log of the connections refused at them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ServerConfig;
use crate::http::HttpError;

/// Counts open connections, in total and per address, and releases a slot
/// when its [`Slot`] is dropped, however the connection ends.
#[derive(Debug, Default)]
pub struct ConnectionCount {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

pub struct Slot {
    count: Arc<ConnectionCount>,
    ip: IpAddr,
}

impl ConnectionCount {
    /// Take a slot, or say which cap is full.
    pub(super) fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        config: &ServerConfig,
    ) -> Result<Slot, HttpError> {
        let ip = cap_key(ip);
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot {
            count: Arc::clone(self),
            ip,
        };
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let mine = per_ip.entry(ip).or_insert(0);
        *mine += 1;
        let mine = *mine;
        drop(per_ip);
        if config.max_connections > 0 && total > config.max_connections {
            return Err(HttpError::ServiceUnavailable("too many connections"));
        }
        if config.max_per_ip > 0 && mine > config.max_per_ip {
            return Err(HttpError::ServiceUnavailable(
                "too many connections from your address",
            ));
        }
        Ok(slot)
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.total.fetch_sub(1, Ordering::AcqRel);
        let mut per_ip = self.count.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// What the per-IP cap counts a peer as: its IPv4 address (also when it
/// arrives IPv4-mapped on an IPv6 socket), or the /64 of its IPv6 address.
/// One IPv6 host is usually given a whole /64 and can connect from any
/// address in it, so counting single IPv6 addresses would not cap it at all.
pub fn cap_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
    }
}

/// Logs the connections refused at the caps at `info`, but at most one
/// line a second, counting the rest: a flood of connections over the caps
/// must not turn into a flood of log lines written by the accept loop.
#[derive(Default)]
pub(super) struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    pub(super) fn log(&mut self, peer: SocketAddr, refusal: &HttpError) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now < last + Duration::from_secs(1))
        {
            self.unlogged += 1;
            log::debug!("{peer}: refused: {refusal}");
            return;
        }
        match std::mem::take(&mut self.unlogged) {
            0 => log::info!("{peer}: refused: {refusal}"),
            more => log::info!(
                "{peer}: refused: {refusal} (and {more} more at the connection caps since the last such line)"
            ),
        }
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::Config;
    use std::net::Ipv4Addr;

    #[test]
    fn cap_key_counts_ipv4_by_address_and_ipv6_by_slash_64() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(cap_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(cap_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(cap_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(cap_key(a), cap_key(b));
        assert_ne!(cap_key(a), cap_key(other));
    }

    #[test]
    fn one_ipv6_slash_64_shares_one_per_ip_cap() {
        let mut config = ServerConfig::new(Config::new(crate::ws::Role::Server));
        config.max_per_ip = 2;
        let count = Arc::new(ConnectionCount::default());
        let a = count
            .acquire("2001:db8::1".parse().unwrap(), &config)
            .unwrap();
        let b = count
            .acquire("2001:db8::2".parse().unwrap(), &config)
            .unwrap();
        assert!(
            count
                .acquire("2001:db8::3".parse().unwrap(), &config)
                .is_err()
        );
        assert!(
            count
                .acquire("2001:db8:0:1::3".parse().unwrap(), &config)
                .is_ok()
        );
        drop((a, b));
        assert!(
            count
                .acquire("2001:db8::3".parse().unwrap(), &config)
                .is_ok()
        );
        assert_eq!(count.open(), 0);
    }
}
