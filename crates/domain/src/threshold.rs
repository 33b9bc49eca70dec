//! Usage-threshold cutoff values (达量断网): `-1` unlimited, `0` cut at the
//! first byte, or a positive whole number of MB.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// The largest threshold accepted, in MB (the documentation sets no upper
/// bound; 2^31-1 MB is about 2 PB, far beyond any IoT plan, and fits every
/// carrier's integer field).
pub const MAX_THRESHOLD_MB: i64 = i32::MAX as i64;

/// A usage threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum Threshold {
    /// `-1`: no threshold.
    Unlimited,
    /// `0`: cut the card at its first byte.
    Immediate,
    /// A positive whole number of MB.
    Megabytes(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ThresholdError {
    #[error(
        "threshold must be -1 (unlimited), 0 (immediate) or a positive whole number of MB, got {0}"
    )]
    OutOfRange(i64),
    #[error("threshold must be a whole number of MB, got {0:?}")]
    NotANumber(String),
}

impl Threshold {
    pub fn from_mb(v: i64) -> Result<Threshold, ThresholdError> {
        match v {
            -1 => Ok(Threshold::Unlimited),
            0 => Ok(Threshold::Immediate),
            1..=MAX_THRESHOLD_MB => Ok(Threshold::Megabytes(v as u32)),
            _ => Err(ThresholdError::OutOfRange(v)),
        }
    }

    pub fn parse(s: &str) -> Result<Threshold, ThresholdError> {
        let t = s.trim();
        let v: i64 = t
            .parse()
            .map_err(|_| ThresholdError::NotANumber(t.to_owned()))?;
        Threshold::from_mb(v)
    }

    /// The wire value carriers use (`quota` in MB, -1 unlimited, 0 immediate).
    pub fn as_mb(self) -> i64 {
        match self {
            Threshold::Unlimited => -1,
            Threshold::Immediate => 0,
            Threshold::Megabytes(m) => i64::from(m),
        }
    }
}

impl TryFrom<i64> for Threshold {
    type Error = ThresholdError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Threshold::from_mb(v)
    }
}

impl From<Threshold> for i64 {
    fn from(t: Threshold) -> i64 {
        t.as_mb()
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Unlimited => f.write_str("unlimited (-1)"),
            Threshold::Immediate => f.write_str("immediate (0)"),
            Threshold::Megabytes(m) => write!(f, "{m} MB"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_kinds() {
        assert_eq!(Threshold::from_mb(-1), Ok(Threshold::Unlimited));
        assert_eq!(Threshold::from_mb(0), Ok(Threshold::Immediate));
        assert_eq!(Threshold::from_mb(500), Ok(Threshold::Megabytes(500)));
        assert_eq!(Threshold::from_mb(-2), Err(ThresholdError::OutOfRange(-2)));
        assert!(Threshold::parse("1.5").is_err());
        assert!(Threshold::parse("abc").is_err());
        assert_eq!(Threshold::parse(" 42 "), Ok(Threshold::Megabytes(42)));
        assert!(Threshold::from_mb(MAX_THRESHOLD_MB + 1).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(v in -1i64..=MAX_THRESHOLD_MB) {
            let t = Threshold::from_mb(v).unwrap();
            prop_assert_eq!(t.as_mb(), v);
            prop_assert_eq!(Threshold::parse(&v.to_string()).unwrap(), t);
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = Threshold::parse(&s);
        }
    }
}
