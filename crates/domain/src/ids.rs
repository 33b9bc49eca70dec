//! Card identifiers: ICCID, IMEI and container ids.
//!
//! Parsers never panic (property-tested) and return a typed [`IdError`] that
//! maps to one error code, so a bad identifier in a batch of 10,000 fails that
//! one item with a reason.

use crate::carrier::Carrier;
use crate::codes::ErrorCode;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("empty identifier")]
    Empty,
    #[error("ICCID must have 19 or 20 characters, got {0}")]
    IccidLength(usize),
    #[error("ICCID must start with 89 (telecom industry identifier)")]
    IccidPrefix,
    #[error("ICCID has a non-digit at position {0}")]
    IccidNonDigit(usize),
    #[error("ICCID check digit is {got}, Luhn says {expected}")]
    IccidCheckDigit { expected: u8, got: u8 },
    #[error("IMEI must be 15 digits")]
    ImeiFormat,
    #[error("IMEI check digit is {got}, Luhn says {expected}")]
    ImeiCheckDigit { expected: u8, got: u8 },
    #[error(
        "container id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_', starting with a letter or digit"
    )]
    ContainerIdFormat,
}

impl IdError {
    /// The stable code this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            IdError::ImeiFormat | IdError::ImeiCheckDigit { .. } => ErrorCode::InvalidImei,
            _ => ErrorCode::InvalidCardId,
        }
    }
}

/// The Luhn check digit for `digits` (the payload, without the check digit).
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    // Walk from the right: the digit next to the (missing) check digit is doubled.
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - (sum % 10)) % 10) as u8
}

fn digits_of(s: &str) -> Option<Vec<u8>> {
    s.bytes()
        .map(|b| b.is_ascii_digit().then(|| b - b'0'))
        .collect()
}

/// A valid ICCID: 19 or 20 digits, `89` prefix, Luhn check digit last.
///
/// A printed 20-character ICCID ending in a letter is kept as its first 19
/// digits, which must then carry the check digit (domain.md: "printed cards may
/// end in a letter, the system keeps the first 19 digits").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iccid(String);

impl Iccid {
    /// Parse and normalise. Leading and trailing ASCII whitespace is ignored
    /// (operators paste from spreadsheets).
    pub fn parse(input: &str) -> Result<Iccid, IdError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let n = s.chars().count();
        if !(19..=20).contains(&n) {
            return Err(IdError::IccidLength(n));
        }
        // The last character is ASCII here, so slicing it off is on a char boundary.
        let body: &str = if n == 20 && s.chars().last().is_some_and(|c| c.is_ascii_alphabetic()) {
            &s[..s.len() - 1]
        } else {
            s
        };
        if let Some(pos) = body.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(IdError::IccidNonDigit(pos));
        }
        if !body.starts_with("89") {
            return Err(IdError::IccidPrefix);
        }
        let digits = digits_of(body).ok_or(IdError::IccidNonDigit(0))?;
        let (payload, check) = digits.split_at(digits.len() - 1);
        let expected = luhn_check_digit(payload);
        if expected != check[0] {
            return Err(IdError::IccidCheckDigit {
                expected,
                got: check[0],
            });
        }
        Ok(Iccid(body.to_owned()))
    }

    /// Build a valid ICCID from a payload of 18 or 19 digits by appending the
    /// Luhn digit (used by the simulator and tests to generate cards).
    pub fn from_payload(payload: &str) -> Result<Iccid, IdError> {
        let digits = digits_of(payload).ok_or(IdError::IccidNonDigit(0))?;
        let full = format!("{payload}{}", luhn_check_digit(&digits));
        Iccid::parse(&full)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit issuer prefix, e.g. `898603`.
    pub fn issuer_prefix(&self) -> &str {
        &self.0[..6]
    }

    /// The carrier the issuer prefix belongs to, when it is a Chinese carrier's.
    pub fn carrier(&self) -> Option<Carrier> {
        Carrier::from_issuer_prefix(self.issuer_prefix())
    }
}

impl fmt::Display for Iccid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Iccid {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Iccid::parse(s)
    }
}

impl TryFrom<String> for Iccid {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Iccid::parse(&s)
    }
}

impl From<Iccid> for String {
    fn from(i: Iccid) -> String {
        i.0
    }
}

/// A valid IMEI: 15 digits with a Luhn check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Imei(String);

impl Imei {
    pub fn parse(input: &str) -> Result<Imei, IdError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.len() != 15 {
            return Err(IdError::ImeiFormat);
        }
        let digits = digits_of(s).ok_or(IdError::ImeiFormat)?;
        let expected = luhn_check_digit(&digits[..14]);
        if expected != digits[14] {
            return Err(IdError::ImeiCheckDigit {
                expected,
                got: digits[14],
            });
        }
        Ok(Imei(s.to_owned()))
    }

    /// Build a valid IMEI from 14 digits by appending the Luhn digit.
    pub fn from_payload(payload: &str) -> Result<Imei, IdError> {
        let digits = digits_of(payload).ok_or(IdError::ImeiFormat)?;
        Imei::parse(&format!("{payload}{}", luhn_check_digit(&digits)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Imei {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Imei::parse(&s)
    }
}

impl From<Imei> for String {
    fn from(i: Imei) -> String {
        i.0
    }
}

/// How a caller names a card: a physical card's ICCID, or the platform's
/// container id (a tri-net card's, an eSIM's EID, a vSIM's CID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CardId {
    Iccid(Iccid),
    Container(String),
}

impl CardId {
    /// Parse a card reference. Anything that looks like an ICCID (all digits,
    /// starting with `89`, 19-20 characters, or 19 digits and a letter) is held
    /// to the ICCID rules, so a mistyped ICCID is reported as such instead of
    /// being taken for a container id.
    pub fn parse(input: &str) -> Result<CardId, IdError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let digit_prefix = s.bytes().take_while(u8::is_ascii_digit).count();
        let looks_like_iccid = s.starts_with("89") && digit_prefix >= 17 && s.len() <= 22;
        if looks_like_iccid {
            return Iccid::parse(s).map(CardId::Iccid);
        }
        // Must start with a letter or digit: subjects use `_` as a reserved token.
        if s.len() > 64
            || !s.as_bytes()[0].is_ascii_alphanumeric()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(IdError::ContainerIdFormat);
        }
        Ok(CardId::Container(s.to_owned()))
    }

    /// The canonical key used in subjects, KV keys and the registry. Only
    /// `[A-Za-z0-9_-]`, so it is safe as a NATS subject token and KV key.
    pub fn key(&self) -> &str {
        match self {
            CardId::Iccid(i) => i.as_str(),
            CardId::Container(c) => c,
        }
    }

    pub fn iccid(&self) -> Option<&Iccid> {
        match self {
            CardId::Iccid(i) => Some(i),
            CardId::Container(_) => None,
        }
    }
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // A real-format China Telecom ICCID payload (898603...), check digit computed.
    fn ct_iccid() -> String {
        Iccid::from_payload("898603201612345678").unwrap().0
    }

    #[test]
    fn luhn_known_values() {
        // Classic example: 7992739871 -> 3
        assert_eq!(luhn_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        // IMEI example from the GSMA: 49015420323751 -> 8
        assert!(Imei::parse("490154203237518").is_ok());
        assert_eq!(
            Imei::parse("490154203237517"),
            Err(IdError::ImeiCheckDigit {
                expected: 8,
                got: 7
            })
        );
    }

    #[test]
    fn iccid_19_and_20_digits() {
        let i19 = ct_iccid();
        assert_eq!(i19.len(), 19);
        let p = Iccid::parse(&i19).unwrap();
        assert_eq!(p.carrier(), Some(Carrier::Ct));
        let i20 = Iccid::from_payload("8986002016123456789").unwrap();
        assert_eq!(i20.as_str().len(), 20);
        assert_eq!(i20.carrier(), Some(Carrier::Cmcc));
    }

    #[test]
    fn iccid_printed_letter_keeps_first_19() {
        let i19 = ct_iccid();
        let printed = format!("{i19}F");
        assert_eq!(Iccid::parse(&printed).unwrap().as_str(), i19);
    }

    #[test]
    fn iccid_errors_are_typed() {
        assert_eq!(Iccid::parse(""), Err(IdError::Empty));
        assert_eq!(Iccid::parse("89860"), Err(IdError::IccidLength(5)));
        assert_eq!(
            Iccid::parse("1986032016123456780"),
            Err(IdError::IccidPrefix)
        );
        assert_eq!(
            Iccid::parse("89860320161234x6780"),
            Err(IdError::IccidNonDigit(14))
        );
        let mut bad = ct_iccid().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
        let err = Iccid::parse(std::str::from_utf8(&bad).unwrap()).unwrap_err();
        assert!(matches!(err, IdError::IccidCheckDigit { .. }));
        assert_eq!(err.code(), ErrorCode::InvalidCardId);
    }

    #[test]
    fn card_id_routes_iccid_like_inputs_to_iccid_rules() {
        assert!(matches!(
            CardId::parse(&ct_iccid()).unwrap(),
            CardId::Iccid(_)
        ));
        // A mistyped ICCID is an ICCID error, not a container id.
        assert!(matches!(
            CardId::parse("8986032016123456781"),
            Err(IdError::IccidCheckDigit { .. })
        ));
        assert_eq!(
            CardId::parse("TRI00000000000000001").unwrap(),
            CardId::Container("TRI00000000000000001".into())
        );
        assert_eq!(CardId::parse("a b"), Err(IdError::ContainerIdFormat));
        assert_eq!(
            CardId::parse("bad.subject.token"),
            Err(IdError::ContainerIdFormat)
        );
        assert_eq!(CardId::parse("_"), Err(IdError::ContainerIdFormat));
        assert_eq!(CardId::parse("-x"), Err(IdError::ContainerIdFormat));
    }

    #[test]
    fn imei_rules() {
        assert_eq!(Imei::parse("12345"), Err(IdError::ImeiFormat));
        assert_eq!(Imei::parse("49015420323751a"), Err(IdError::ImeiFormat));
        let i = Imei::from_payload("35209900176148").unwrap();
        assert_eq!(i.as_str().len(), 15);
        assert_eq!(IdError::ImeiFormat.code(), ErrorCode::InvalidImei);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = Iccid::parse(&s);
            let _ = Imei::parse(&s);
            let _ = CardId::parse(&s);
        }

        #[test]
        fn parsers_never_panic_on_digit_soup(s in "[0-9A-Za-z ]{0,30}") {
            let _ = Iccid::parse(&s);
            let _ = CardId::parse(&s);
        }

        #[test]
        fn valid_iccids_round_trip(payload in "89[0-9]{16,17}") {
            let i = Iccid::from_payload(&payload).unwrap();
            let again = Iccid::parse(i.as_str()).unwrap();
            prop_assert_eq!(&again, &i);
            let id = CardId::parse(i.as_str()).unwrap();
            prop_assert_eq!(id.key(), i.as_str());
            // serde round trip
            let j = serde_json::to_string(&i).unwrap();
            let back: Iccid = serde_json::from_str(&j).unwrap();
            prop_assert_eq!(back, i);
        }

        #[test]
        fn any_single_digit_change_is_caught(payload in "89[0-9]{17}", pos in 2usize..19, delta in 1u8..10) {
            let i = Iccid::from_payload(&payload).unwrap();
            let mut b = i.as_str().as_bytes().to_vec();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(b).unwrap();
            prop_assert!(Iccid::parse(&changed).is_err());
        }

        #[test]
        fn valid_imeis_round_trip(payload in "[0-9]{14}") {
            let i = Imei::from_payload(&payload).unwrap();
            prop_assert_eq!(Imei::parse(i.as_str()).unwrap(), i);
        }
    }
}
