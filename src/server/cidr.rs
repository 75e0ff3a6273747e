//! Address ranges in CIDR notation (RFC 4632 §3.1 for IPv4, RFC 4291 §2.3
//! for IPv6): which peers `--trust-proxy` trusts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A range of IP addresses: `10.0.0.0/8`, `2001:db8::/32`; a bare address
/// (`127.0.0.1`, `::1`) is the range of that one address (/32, /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Does the range hold `ip`? An IPv4 address that arrives IPv4-mapped
    /// on an IPv6 socket (`::ffff:127.0.0.1`) is judged as the IPv4
    /// address it is, so an IPv4 range holds it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    /// Parse `ADDRESS[/PREFIX]`. Refused, with the reason: anything that is
    /// not an IP address, a prefix longer than the address, a range written
    /// with host bits set (`10.0.0.1/8`: the network is `10.0.0.0/8`, and a
    /// typo here would trust the wrong peers), and IPv4-mapped IPv6 ranges
    /// (write them as IPv4).
    fn from_str(s: &str) -> Result<Cidr, String> {
        const EXPECTED: &str =
            "expected an address or a range such as 127.0.0.1, 10.0.0.0/8, ::1 or 2001:db8::/32";
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address: {EXPECTED}"))?;
        let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= bits && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "bad prefix length in {s:?}: a number from 0 to {bits}; {EXPECTED}"
                    ));
                }
            },
        };
        if let IpAddr::V6(v6) = ip
            && v6.to_ipv4_mapped().is_some()
        {
            return Err(format!(
                "{s:?} is an IPv4-mapped IPv6 range: write it as IPv4 (an IPv4 range also holds the mapped addresses)"
            ));
        }
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_v4(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_v6(prefix)).into()),
        };
        if network != ip {
            return Err(format!(
                "{s:?} has host bits set: the range it names is {network}/{prefix}"
            ));
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_bare_address_is_a_range_of_one() {
        assert_eq!(cidr("127.0.0.1").to_string(), "127.0.0.1/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
    }

    #[test]
    fn ranges_hold_their_addresses_and_no_others() {
        let ten = cidr("10.0.0.0/8");
        assert!(ten.contains(ip("10.0.0.0")));
        assert!(ten.contains(ip("10.255.255.255")));
        assert!(!ten.contains(ip("11.0.0.0")));
        assert!(!ten.contains(ip("9.255.255.255")));
        let odd = cidr("192.168.4.0/22");
        assert!(odd.contains(ip("192.168.7.255")));
        assert!(!odd.contains(ip("192.168.8.0")));
        let doc = cidr("2001:db8::/32");
        assert!(doc.contains(ip("2001:db8:ffff::1")));
        assert!(!doc.contains(ip("2001:db9::1")));
        let everything = cidr("0.0.0.0/0");
        assert!(everything.contains(ip("203.0.113.9")));
        assert!(
            !everything.contains(ip("::1")),
            "an IPv4 range holds no IPv6 address"
        );
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(
            !cidr("::/0").contains(ip("10.0.0.1")),
            "nor an IPv6 range an IPv4 one"
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_judged_as_ipv4() {
        assert!(cidr("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("::/0").contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn what_is_refused_says_why() {
        for (bad, why) in [
            ("", "not an IP address"),
            ("localhost", "not an IP address"),
            ("10.0.0.0/", "bad prefix length"),
            ("10.0.0.0/33", "bad prefix length"),
            ("10.0.0.0/+8", "bad prefix length"),
            ("10.0.0.0/-1", "bad prefix length"),
            ("10.0.0.0/8/8", "bad prefix length"),
            ("::/129", "bad prefix length"),
            ("10.0.0.1/8", "the range it names is 10.0.0.0/8"),
            ("2001:db8::1/32", "the range it names is 2001:db8::/32"),
            ("::ffff:10.0.0.0/104", "write it as IPv4"),
            ("10.0.0.0 /8", "not an IP address"),
            ("[::1]", "not an IP address"),
        ] {
            let err = bad.parse::<Cidr>().expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
