//! Where pushes may go: an address resolving to loopback, private,
//! link-local (cloud metadata: 169.254.169.254, fd00:ec2::254), shared
//! (CGNAT), multicast or otherwise special ranges is refused, at
//! registration and again at every connection (DNS can change), unless
//! `GSL_PUSH_ALLOW_NETS` names the range. The connection then goes to the
//! very address that was checked, so a second lookup cannot swap it.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The ranges no push may reach unless allowed.
pub const DENIED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The allowed exceptions.
#[derive(Debug, Clone, Default)]
pub struct NetGuard {
    pub allow: Vec<IpNet>,
}

impl NetGuard {
    /// `GSL_PUSH_ALLOW_NETS`: comma-separated CIDRs (e.g. `127.0.0.0/8`).
    pub fn parse(allow: &str) -> Result<NetGuard, String> {
        let mut v = Vec::new();
        for part in allow.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            v.push(
                part.parse::<IpNet>()
                    .map_err(|_| format!("GSL_PUSH_ALLOW_NETS: {part:?} is not a CIDR range"))?,
            );
        }
        Ok(NetGuard { allow: v })
    }

    /// Whether a push may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        // An IPv4 address written as IPv6 is judged as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        !denied(ip)
    }
}

fn denied(ip: IpAddr) -> bool {
    DENIED
        .iter()
        .any(|n| n.parse::<IpNet>().map(|n| n.contains(&ip)).unwrap_or(false))
        || match ip {
            IpAddr::V4(v4) => v4 == Ipv4Addr::BROADCAST,
            IpAddr::V6(v6) => v6 == Ipv6Addr::UNSPECIFIED,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_ranges_are_refused_unless_allowed() {
        let g = NetGuard::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!g.permits(bad.parse().unwrap()), "{bad}");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(g.permits(good.parse().unwrap()), "{good}");
        }
        let g = NetGuard::parse("127.0.0.0/8, ::1/128").unwrap();
        assert!(g.permits("127.0.0.1".parse().unwrap()));
        assert!(g.permits("::1".parse().unwrap()));
        assert!(!g.permits("10.0.0.1".parse().unwrap()));
        assert!(NetGuard::parse("localhost").is_err());
    }
}
