//! The four carrier platforms and how an ICCID is routed to one.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A carrier platform. A card never changes carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    /// China Mobile (APN `cmiot`).
    Cmcc,
    /// China Telecom (APN `ctnet`).
    Ct,
    /// China Unicom (APN `scuiot`).
    Cu,
    /// A tri-net card holding all three profiles.
    Trinet,
}

/// Issuer prefixes seen in China (domain.md), prefix -> carrier.
pub const ISSUER_PREFIXES: &[(&str, Carrier)] = &[
    ("898600", Carrier::Cmcc),
    ("898602", Carrier::Cmcc),
    ("898604", Carrier::Cmcc),
    ("898607", Carrier::Cmcc),
    ("898608", Carrier::Cmcc),
    ("898601", Carrier::Cu),
    ("898606", Carrier::Cu),
    ("898609", Carrier::Cu),
    ("898603", Carrier::Ct),
    ("898611", Carrier::Ct),
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown carrier {0:?}: expected one of {names}", names = Carrier::names().join(", "))]
pub struct UnknownCarrier(pub String);

impl Carrier {
    pub const ALL: [Carrier; 4] = [Carrier::Cmcc, Carrier::Ct, Carrier::Cu, Carrier::Trinet];

    /// Every carrier's name, in table order (messages, settings prefixes).
    pub fn names() -> Vec<&'static str> {
        Carrier::ALL.iter().map(|c| c.as_str()).collect()
    }

    /// The token used in subjects, config and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Carrier::Cmcc => "cmcc",
            Carrier::Ct => "ct",
            Carrier::Cu => "cu",
            Carrier::Trinet => "trinet",
        }
    }

    /// Index into per-carrier arrays (`[T; 4]` in the rule tables).
    pub const fn index(self) -> usize {
        match self {
            Carrier::Cmcc => 0,
            Carrier::Ct => 1,
            Carrier::Cu => 2,
            Carrier::Trinet => 3,
        }
    }

    pub const fn apn(self) -> Option<&'static str> {
        match self {
            Carrier::Cmcc => Some("cmiot"),
            Carrier::Ct => Some("ctnet"),
            Carrier::Cu => Some("scuiot"),
            Carrier::Trinet => None,
        }
    }

    /// Human name, as operators say it.
    pub const fn display_name(self) -> &'static str {
        match self {
            Carrier::Cmcc => "China Mobile",
            Carrier::Ct => "China Telecom",
            Carrier::Cu => "China Unicom",
            Carrier::Trinet => "tri-net",
        }
    }

    /// The carrier a six-digit issuer prefix belongs to.
    pub fn from_issuer_prefix(prefix: &str) -> Option<Carrier> {
        ISSUER_PREFIXES
            .iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, c)| *c)
    }

    /// The issuer prefixes of a carrier (empty for tri-net, which is looked up
    /// by container id).
    pub fn issuer_prefixes(self) -> impl Iterator<Item = &'static str> {
        ISSUER_PREFIXES
            .iter()
            .filter(move |(_, c)| *c == self)
            .map(|(p, _)| *p)
    }
}

impl fmt::Display for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Carrier {
    type Err = UnknownCarrier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cmcc" | "china_mobile" | "cm" => Ok(Carrier::Cmcc),
            "ct" | "china_telecom" | "ctcc" => Ok(Carrier::Ct),
            "cu" | "china_unicom" | "cucc" => Ok(Carrier::Cu),
            "trinet" | "tri-net" | "tri_net" => Ok(Carrier::Trinet),
            other => Err(UnknownCarrier(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_row() {
        let expect = [
            ("898600", Carrier::Cmcc),
            ("898602", Carrier::Cmcc),
            ("898604", Carrier::Cmcc),
            ("898607", Carrier::Cmcc),
            ("898608", Carrier::Cmcc),
            ("898601", Carrier::Cu),
            ("898606", Carrier::Cu),
            ("898609", Carrier::Cu),
            ("898603", Carrier::Ct),
            ("898611", Carrier::Ct),
        ];
        for (p, c) in expect {
            assert_eq!(Carrier::from_issuer_prefix(p), Some(c), "{p}");
        }
        assert_eq!(Carrier::from_issuer_prefix("898605"), None);
        assert_eq!(Carrier::from_issuer_prefix("894400"), None);
        assert_eq!(Carrier::Trinet.issuer_prefixes().count(), 0);
        assert_eq!(Carrier::Cmcc.issuer_prefixes().count(), 5);
    }

    #[test]
    fn names_round_trip() {
        for c in Carrier::ALL {
            assert_eq!(c.as_str().parse::<Carrier>().unwrap(), c);
            assert_eq!(Carrier::ALL[c.index()], c);
        }
        assert!("verizon".parse::<Carrier>().is_err());
        assert_eq!(Carrier::Cmcc.apn(), Some("cmiot"));
        assert_eq!(Carrier::Ct.apn(), Some("ctnet"));
        assert_eq!(Carrier::Cu.apn(), Some("scuiot"));
    }
}
