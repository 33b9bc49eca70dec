//! # gsl-secret: credentials that never print
//!
//! [`Secret`] holds a token or password. Its `Debug` and `Display` print
//! `<redacted>`, so a settings struct may derive `Debug` and be logged
//! whole; its comparison takes the same time wherever two values first
//! differ, so a caller guessing a token learns nothing from how fast a wrong
//! guess is refused. The value comes out only through [`Secret::expose`],
//! which reads as what it is at every call site.
//!
//! ## Layout
//!
//! One type, in this file.
#![forbid(unsafe_code)]

use std::fmt;

/// A credential (token, password, signing key).
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: for the one place that must send or check it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Equal to `other`, in time that depends only on the lengths.
    pub fn matches(&self, other: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), other.as_bytes())
    }
}

/// Byte-wise equality that reads every byte of the shorter input whatever
/// the contents (only the lengths may show in the time taken).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2-token");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Settings {
            token: Secret,
            maybe: Option<Secret>,
        }
        let text = format!(
            "{s} {s:?} {:?} {:#?}",
            Settings {
                token: s.clone(),
                maybe: Some(s.clone())
            },
            vec![s.clone()]
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn compares_by_value() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abd"));
        assert!(!s.matches("ab"));
        assert!(!s.matches("abcd"));
        assert!(!s.matches(""));
        assert_eq!(s, Secret::from("abc"));
        assert_ne!(s, Secret::from("abC"));
        assert!(Secret::default().matches(""));
    }
}
