//! The connection caps: open connections counted in total and per
//! address, taken as a connection is accepted (per address only once its
//! request head names the client, for a trusted proxy's) and released
//! however it ends; and the log of the connections refused at them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ServerConfig;
use crate::http::HttpError;

/// Why a connection over `--max-per-ip` is refused (and how the metrics
/// tell it from one over `--max-connections`).
pub const TOO_MANY_FROM_IP: &str = "too many connections from your address";

/// Counts open connections, in total and per address, and releases a slot
/// when its [`Slot`] is dropped, however the connection ends.
#[derive(Debug, Default)]
pub struct ConnectionCount {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's place in the count: in the total, and under its
/// address once that is known.
pub struct Slot {
    count: Arc<ConnectionCount>,
    ip: Option<IpAddr>,
}

impl ConnectionCount {
    /// Take a slot, counted under `ip` too if given (else see
    /// [`Slot::count_ip`]), or say which cap is full.
    pub(super) fn acquire(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        config: &ServerConfig,
    ) -> Result<Slot, HttpError> {
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        let mut slot = Slot {
            count: Arc::clone(self),
            ip: None,
        };
        if config.max_connections > 0 && total > config.max_connections {
            return Err(HttpError::ServiceUnavailable("too many connections"));
        }
        if let Some(ip) = ip {
            slot.count_ip(ip, config)?;
        }
        Ok(slot)
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Slot {
    /// Count this connection under the client's address `ip`, or refuse it
    /// if that address has its fill. Once per slot: a connection has one
    /// client.
    pub(super) fn count_ip(&mut self, ip: IpAddr, config: &ServerConfig) -> Result<(), HttpError> {
        debug_assert!(
            self.ip.is_none(),
            "a connection counted under two addresses"
        );
        let ip = cap_key(ip);
        let mut per_ip = self.count.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let mine = per_ip.entry(ip).or_insert(0);
        *mine += 1;
        let mine = *mine;
        drop(per_ip);
        self.ip = Some(ip);
        if config.max_per_ip > 0 && mine > config.max_per_ip {
            return Err(HttpError::ServiceUnavailable(TOO_MANY_FROM_IP));
        }
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.total.fetch_sub(1, Ordering::AcqRel);
        let Some(ip) = self.ip else { return };
        let mut per_ip = self.count.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
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
            .acquire(Some("2001:db8::1".parse().unwrap()), &config)
            .unwrap();
        let b = count
            .acquire(Some("2001:db8::2".parse().unwrap()), &config)
            .unwrap();
        assert!(
            count
                .acquire(Some("2001:db8::3".parse().unwrap()), &config)
                .is_err()
        );
        assert!(
            count
                .acquire(Some("2001:db8:0:1::3".parse().unwrap()), &config)
                .is_ok()
        );
        drop((a, b));
        assert!(
            count
                .acquire(Some("2001:db8::3".parse().unwrap()), &config)
                .is_ok()
        );
        assert_eq!(count.open(), 0);
    }

    #[test]
    fn a_slot_taken_before_its_address_is_known_is_counted_under_it_later() {
        let mut config = ServerConfig::new(Config::new(crate::ws::Role::Server));
        config.max_per_ip = 1;
        let count = Arc::new(ConnectionCount::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut a = count.acquire(None, &config).unwrap();
        let mut b = count.acquire(None, &config).unwrap();
        let mut c = count.acquire(None, &config).unwrap();
        assert_eq!(count.open(), 3, "each counts in the total at once");
        a.count_ip(ip("10.0.0.1"), &config).unwrap();
        b.count_ip(ip("10.0.0.2"), &config).unwrap();
        assert_eq!(
            c.count_ip(ip("10.0.0.1"), &config),
            Err(HttpError::ServiceUnavailable(
                "too many connections from your address"
            ))
        );
        drop(c);
        drop(a);
        let mut d = count.acquire(None, &config).unwrap();
        d.count_ip(ip("10.0.0.1"), &config).unwrap();
        drop((b, d));
        assert_eq!(count.open(), 0);
        assert!(count.per_ip.lock().unwrap().is_empty());
    }
}
