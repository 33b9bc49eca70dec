//! Directional config (定向): the entry parser, per-carrier limits, entry
//! states, and the check that a change keeps a purchase batch within them.
//!
//! Entries look like `https://*.example.com:443`, `tcp://example.com` or
//! `10.1.2.3`. Protocols: `http`, `https`, `tcp`, `udp`, `mqtt`. A wildcard
//! `*` stands for exactly one label; the project allows it only as the
//! leftmost label, and never as the whole registrable part (`*.com`, and
//! `*.com.cn` for the Chinese second-level suffixes, are invalid).

use crate::carrier::Carrier;
use crate::codes::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use thiserror::Error;

/// Protocols an entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
    Udp,
    Mqtt,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Protocol::Http),
            "https" => Some(Protocol::Https),
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "mqtt" => Some(Protocol::Mqtt),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Mqtt => "mqtt",
        }
    }

    /// http 80, https 443; other protocols have no default.
    pub const fn default_port(self) -> Option<u16> {
        match self {
            Protocol::Http => Some(80),
            Protocol::Https => Some(443),
            _ => None,
        }
    }
}

/// An IP entry or a domain entry (China Telecom counts them separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    Ip,
    Domain,
}

/// A parsed, normalised entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub protocol: Option<Protocol>,
    /// Lower-case host: an IPv4 address or a domain, possibly `*.`-prefixed.
    pub host: String,
    pub kind: HostKind,
    pub wildcard: bool,
    /// Explicit port, or the protocol's default.
    pub port: Option<u16>,
    /// Path, for http(s) entries (`/*` appended for China Unicom http entries).
    pub path: Option<String>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.protocol {
            write!(f, "{}://", p.as_str())?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(path) = &self.path {
            f.write_str(path)?;
        }
        Ok(())
    }
}

/// Why an entry or a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DirectionalError {
    #[error("entry {entry:?}: {reason}")]
    Parse { entry: String, reason: &'static str },
    #[error("entry {entry:?}: {carrier} allows wildcards only on {allowed}")]
    WildcardNotAllowed {
        entry: String,
        carrier: Carrier,
        allowed: &'static str,
    },
    #[error("{carrier} allows at most {max} IP entries, the change would leave {count}")]
    TooManyIps {
        carrier: Carrier,
        max: usize,
        count: usize,
    },
    #[error("{carrier} allows at most {max} domain entries, the change would leave {count}")]
    TooManyDomains {
        carrier: Carrier,
        max: usize,
        count: usize,
    },
    #[error("{carrier} allows at most {max} entries in all, the change would leave {count}")]
    TooManyEntries {
        carrier: Carrier,
        max: usize,
        count: usize,
    },
    #[error("entry {id} is {state:?}: it cannot be {action}")]
    EntryState {
        id: String,
        state: EntryState,
        action: &'static str,
    },
    #[error("directional config must keep at least one entry")]
    LastEntry,
    #[error("batch was not bought as a new purchase or card transfer with directional data")]
    NotEligible,
    #[error("no entry with id {0:?} in this batch")]
    UnknownEntry(String),
    #[error("entry {0:?} appears twice in the request")]
    DuplicateInRequest(String),
    #[error("the change names no entry")]
    EmptyChange,
}

impl DirectionalError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DirectionalError::Parse { .. }
            | DirectionalError::UnknownEntry(_)
            | DirectionalError::DuplicateInRequest(_)
            | DirectionalError::EmptyChange => ErrorCode::InvalidItemParameter,
            DirectionalError::WildcardNotAllowed { .. }
            | DirectionalError::TooManyIps { .. }
            | DirectionalError::TooManyDomains { .. }
            | DirectionalError::TooManyEntries { .. } => ErrorCode::DirectionalLimit,
            DirectionalError::EntryState { .. } => ErrorCode::DirectionalEntryState,
            DirectionalError::LastEntry => ErrorCode::DirectionalLastEntry,
            DirectionalError::NotEligible => ErrorCode::DirectionalNotEligible,
        }
    }
}

/// Where wildcards may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WildcardRule {
    /// On domain entries, any protocol.
    DomainsOnly,
    /// On `http` and `https` domain entries only (China Unicom).
    HttpDomainsOnly,
}

/// One row of the directional limits table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub carrier: Carrier,
    pub max_ips: Option<usize>,
    pub max_domains: Option<usize>,
    pub max_entries: usize,
    pub wildcards: WildcardRule,
    /// China Unicom appends `/*` to `http` entries.
    pub append_http_wildcard_path: bool,
}

/// domain.md's directional table (lead times are in [`crate::sla`]).
pub static LIMITS: &[Limits] = &[
    Limits {
        carrier: Carrier::Ct,
        max_ips: Some(5),
        max_domains: Some(10),
        max_entries: 10,
        wildcards: WildcardRule::DomainsOnly,
        append_http_wildcard_path: false,
    },
    Limits {
        carrier: Carrier::Cu,
        max_ips: None,
        max_domains: None,
        max_entries: 10,
        wildcards: WildcardRule::HttpDomainsOnly,
        append_http_wildcard_path: true,
    },
    Limits {
        carrier: Carrier::Cmcc,
        max_ips: None,
        max_domains: None,
        max_entries: 10,
        wildcards: WildcardRule::DomainsOnly,
        append_http_wildcard_path: false,
    },
    Limits {
        carrier: Carrier::Trinet,
        max_ips: None,
        max_domains: None,
        max_entries: 10,
        wildcards: WildcardRule::DomainsOnly,
        append_http_wildcard_path: false,
    },
];

pub fn limits(carrier: Carrier) -> &'static Limits {
    LIMITS
        .iter()
        .find(|l| l.carrier == carrier)
        .expect("every carrier has a row (tested)")
}

/// Second-level suffixes under which `*.` would be the whole registrable part.
const MULTI_LABEL_SUFFIXES: &[&str] = &[
    "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn", "mil.cn", "com.hk", "com.tw",
    "co.uk", "co.jp",
];

fn parse_err(entry: &str, reason: &'static str) -> DirectionalError {
    DirectionalError::Parse {
        entry: entry.to_owned(),
        reason,
    }
}

fn parse_ipv4(host: &str) -> Option<()> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    for p in parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if p.len() > 1 && p.starts_with('0') {
            return None;
        }
        if p.parse::<u16>().ok()? > 255 {
            return None;
        }
    }
    Some(())
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Parse one entry, carrier-independent. Use [`parse_for`] to apply a
/// carrier's wildcard and normalisation rules too.
pub fn parse_entry(input: &str) -> Result<Entry, DirectionalError> {
    let raw = input.trim();
    if raw.is_empty() {
        return Err(parse_err(input, "empty entry"));
    }
    if raw.len() > 255 {
        return Err(parse_err(input, "entry longer than 255 characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(parse_err(input, "entry contains whitespace"));
    }
    let (protocol, rest) = match raw.split_once("://") {
        Some((p, rest)) => (
            Some(Protocol::parse(p).ok_or_else(|| {
                parse_err(input, "protocol must be http, https, tcp, udp or mqtt")
            })?),
            rest,
        ),
        None => (None, raw),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    if path.is_some() && !matches!(protocol, Some(Protocol::Http | Protocol::Https)) {
        return Err(parse_err(
            input,
            "only http and https entries may carry a path",
        ));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| parse_err(input, "port must be 1-65535"))?;
            (h, Some(port))
        }
        None => (hostport, None),
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return Err(parse_err(input, "missing host"));
    }
    let (kind, wildcard) = if parse_ipv4(&host).is_some() {
        (HostKind::Ip, false)
    } else if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(parse_err(input, "not a valid IPv4 address"));
    } else {
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() < 2 {
            return Err(parse_err(input, "a domain needs at least two labels"));
        }
        let wildcard = labels[0] == "*";
        let concrete = if wildcard { &labels[1..] } else { &labels[..] };
        if concrete.iter().any(|l| !valid_label(l)) {
            return Err(parse_err(
                input,
                "a wildcard may only be the whole leftmost label; labels are letters, digits and '-'",
            ));
        }
        if concrete
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(parse_err(input, "top-level label cannot be numeric"));
        }
        if wildcard {
            let rest = concrete.join(".");
            if concrete.len() < 2 || MULTI_LABEL_SUFFIXES.contains(&rest.as_str()) {
                return Err(parse_err(
                    input,
                    "a wildcard cannot stand for the whole registrable part (like *.com)",
                ));
            }
        }
        (HostKind::Domain, wildcard)
    };
    let port = port.or_else(|| protocol.and_then(Protocol::default_port));
    Ok(Entry {
        protocol,
        host,
        kind,
        wildcard,
        port,
        path: path.map(str::to_owned),
    })
}

/// Parse an entry and apply a carrier's wildcard rule and normalisation.
pub fn parse_for(carrier: Carrier, input: &str) -> Result<Entry, DirectionalError> {
    let mut e = parse_entry(input)?;
    let l = limits(carrier);
    if e.wildcard {
        let ok = match l.wildcards {
            WildcardRule::DomainsOnly => true,
            WildcardRule::HttpDomainsOnly => {
                matches!(e.protocol, Some(Protocol::Http | Protocol::Https))
            }
        };
        if !ok {
            return Err(DirectionalError::WildcardNotAllowed {
                entry: input.trim().to_owned(),
                carrier,
                allowed: match l.wildcards {
                    WildcardRule::DomainsOnly => "domain entries",
                    WildcardRule::HttpDomainsOnly => "http and https domain entries",
                },
            });
        }
    }
    if l.append_http_wildcard_path && e.protocol == Some(Protocol::Http) {
        match &mut e.path {
            None => e.path = Some("/*".into()),
            Some(p) if !p.ends_with("/*") => {
                if p.ends_with('/') {
                    p.push('*');
                } else {
                    p.push_str("/*");
                }
            }
            Some(_) => {}
        }
    }
    Ok(e)
}

/// Entry states (domain.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Configuring,
    InReview,
    NotYetEffective,
    Effective,
    ReviewRejected,
    Modifying,
    Deleting,
}

impl EntryState {
    pub const ALL: [EntryState; 7] = [
        EntryState::Configuring,
        EntryState::InReview,
        EntryState::NotYetEffective,
        EntryState::Effective,
        EntryState::ReviewRejected,
        EntryState::Modifying,
        EntryState::Deleting,
    ];

    /// "An entry that is configuring, in review or deleting cannot be modified."
    pub const fn can_modify(self) -> bool {
        !matches!(
            self,
            EntryState::Configuring | EntryState::InReview | EntryState::Deleting
        )
    }

    /// "Only an entry that is not yet effective, effective, review rejected or
    /// modifying can be deleted."
    pub const fn can_delete(self) -> bool {
        matches!(
            self,
            EntryState::NotYetEffective
                | EntryState::Effective
                | EntryState::ReviewRejected
                | EntryState::Modifying
        )
    }
}

/// How a purchase batch was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseType {
    NewPurchase,
    CardTransfer,
    Renewal,
    Other,
}

/// "Only batches bought as new purchase or card transfer with directional data
/// can carry directional config."
pub fn batch_eligible(purchase: PurchaseType, directional_data: bool) -> bool {
    directional_data
        && matches!(
            purchase,
            PurchaseType::NewPurchase | PurchaseType::CardTransfer
        )
}

/// An entry configured on a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingEntry {
    pub id: String,
    pub entry: String,
    pub state: EntryState,
}

/// A requested change to a batch's directional config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    Add(&'a [String]),
    Modify { id: &'a str, entry: &'a str },
    Delete(&'a [String]),
}

/// The outcome of a valid change: the batch's entries afterwards (normalised
/// strings; entries already deleting are not counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub entries_after: Vec<Entry>,
    /// New entries actually added (already present ones are skipped).
    pub added: Vec<Entry>,
}

/// Check a change against the batch's eligibility, current entries and the
/// carrier's limits.
pub fn plan_change(
    carrier: Carrier,
    eligible: bool,
    current: &[ExistingEntry],
    change: &Change<'_>,
) -> Result<Plan, DirectionalError> {
    if !eligible {
        return Err(DirectionalError::NotEligible);
    }
    // Entries on their way out no longer count against limits.
    let mut after: Vec<(Option<&str>, Entry)> = Vec::new();
    for e in current.iter().filter(|e| e.state != EntryState::Deleting) {
        // Stored entries were validated when added; tolerate a carrier-side
        // entry we cannot parse by counting it as a domain.
        let parsed = parse_for(carrier, &e.entry).unwrap_or(Entry {
            protocol: None,
            host: e.entry.clone(),
            kind: HostKind::Domain,
            wildcard: false,
            port: None,
            path: None,
        });
        after.push((Some(e.id.as_str()), parsed));
    }
    let find = |id: &str| {
        current
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| DirectionalError::UnknownEntry(id.to_owned()))
    };
    let mut added = Vec::new();
    match change {
        Change::Add(list) => {
            if list.is_empty() {
                return Err(DirectionalError::EmptyChange);
            }
            let mut seen = HashSet::new();
            for raw in list.iter() {
                let e = parse_for(carrier, raw)?;
                if !seen.insert(e.clone()) {
                    return Err(DirectionalError::DuplicateInRequest(raw.clone()));
                }
                if !after.iter().any(|(_, x)| *x == e) {
                    after.push((None, e.clone()));
                    added.push(e);
                }
            }
        }
        Change::Modify { id, entry } => {
            let existing = find(id)?;
            if !existing.state.can_modify() {
                return Err(DirectionalError::EntryState {
                    id: id.to_string(),
                    state: existing.state,
                    action: "modified",
                });
            }
            let e = parse_for(carrier, entry)?;
            if let Some(slot) = after.iter_mut().find(|(i, _)| *i == Some(*id)) {
                slot.1 = e.clone();
            }
            added.push(e);
        }
        Change::Delete(ids) => {
            if ids.is_empty() {
                return Err(DirectionalError::EmptyChange);
            }
            let mut seen = HashSet::new();
            for id in ids.iter() {
                if !seen.insert(id) {
                    return Err(DirectionalError::DuplicateInRequest(id.clone()));
                }
                let existing = find(id)?;
                if !existing.state.can_delete() {
                    return Err(DirectionalError::EntryState {
                        id: id.clone(),
                        state: existing.state,
                        action: "deleted",
                    });
                }
                after.retain(|(i, _)| *i != Some(id.as_str()));
            }
            if after.is_empty() {
                return Err(DirectionalError::LastEntry);
            }
        }
    }
    let entries_after: Vec<Entry> = after.into_iter().map(|(_, e)| e).collect();
    check_limits(carrier, &entries_after)?;
    Ok(Plan {
        entries_after,
        added,
    })
}

/// Check a full set of entries against a carrier's limits.
pub fn check_limits(carrier: Carrier, entries: &[Entry]) -> Result<(), DirectionalError> {
    let l = limits(carrier);
    let ips = entries.iter().filter(|e| e.kind == HostKind::Ip).count();
    let domains = entries.len() - ips;
    if let Some(max) = l.max_ips
        && ips > max
    {
        return Err(DirectionalError::TooManyIps {
            carrier,
            max,
            count: ips,
        });
    }
    if let Some(max) = l.max_domains
        && domains > max
    {
        return Err(DirectionalError::TooManyDomains {
            carrier,
            max,
            count: domains,
        });
    }
    if entries.len() > l.max_entries {
        return Err(DirectionalError::TooManyEntries {
            carrier,
            max: l.max_entries,
            count: entries.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples_from_domain_md() {
        let e = parse_entry("https://*.example.com:443").unwrap();
        assert_eq!(e.protocol, Some(Protocol::Https));
        assert!(e.wildcard);
        assert_eq!(e.kind, HostKind::Domain);
        assert_eq!(e.port, Some(443));
        let e = parse_entry("tcp://example.com").unwrap();
        assert_eq!(e.port, None);
        assert_eq!(e.kind, HostKind::Domain);
        let e = parse_entry("10.1.2.3").unwrap();
        assert_eq!(e.kind, HostKind::Ip);
        assert_eq!(e.protocol, None);
        assert!(matches!(
            parse_entry("https://*.com"),
            Err(DirectionalError::Parse { .. })
        ));
    }

    #[test]
    fn default_ports() {
        assert_eq!(parse_entry("http://a.example.com").unwrap().port, Some(80));
        assert_eq!(
            parse_entry("https://a.example.com").unwrap().port,
            Some(443)
        );
        assert_eq!(
            parse_entry("mqtt://a.example.com:1883").unwrap().port,
            Some(1883)
        );
        assert_eq!(parse_entry("udp://10.0.0.1").unwrap().port, None);
        assert_eq!(
            parse_entry("https://a.example.com").unwrap().to_string(),
            "https://a.example.com:443"
        );
    }

    #[test]
    fn bad_entries() {
        for bad in [
            "",
            "ftp://example.com",
            "https://*",
            "https://*.com",
            "https://*.com.cn",
            "https://a.*.example.com",
            "https://ex*ample.com",
            "256.1.1.1",
            "10.1.2",
            "10.01.2.3",
            "https://example.com:0",
            "https://example.com:70000",
            "localhost",
            "tcp://example.com/path",
            "http://exa mple.com",
            "https://-bad.example.com",
            "*.10.1.2.3",
        ] {
            let r = parse_entry(bad);
            assert!(r.is_err(), "{bad:?} parsed as {r:?}");
            assert_eq!(
                r.unwrap_err().code(),
                ErrorCode::InvalidItemParameter,
                "{bad}"
            );
        }
        assert!(parse_entry("https://*.example.com.cn").is_ok());
    }

    #[test]
    fn wildcard_rules_per_carrier() {
        // CT, CMCC, tri-net: domains only, any protocol
        for c in [Carrier::Ct, Carrier::Cmcc, Carrier::Trinet] {
            assert!(parse_for(c, "tcp://*.example.com").is_ok(), "{c}");
        }
        // CU: http and https domains only
        assert!(parse_for(Carrier::Cu, "https://*.example.com").is_ok());
        assert!(parse_for(Carrier::Cu, "http://*.example.com").is_ok());
        let err = parse_for(Carrier::Cu, "tcp://*.example.com").unwrap_err();
        assert_eq!(err.code(), ErrorCode::DirectionalLimit);
        assert!(matches!(err, DirectionalError::WildcardNotAllowed { .. }));
        assert!(parse_for(Carrier::Cu, "*.example.com").is_err());
    }

    #[test]
    fn cu_appends_wildcard_path_to_http() {
        assert_eq!(
            parse_for(Carrier::Cu, "http://a.example.com")
                .unwrap()
                .to_string(),
            "http://a.example.com:80/*"
        );
        assert_eq!(
            parse_for(Carrier::Cu, "http://a.example.com/api")
                .unwrap()
                .to_string(),
            "http://a.example.com:80/api/*"
        );
        assert_eq!(
            parse_for(Carrier::Cu, "https://a.example.com")
                .unwrap()
                .path,
            None
        );
        assert_eq!(
            parse_for(Carrier::Ct, "http://a.example.com").unwrap().path,
            None
        );
    }

    fn ips(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{}", i + 1)).collect()
    }
    fn domains(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("https://d{i}.example.com"))
            .collect()
    }

    #[test]
    fn ct_limits_5_ips_10_domains_10_entries() {
        let ok = plan_change(Carrier::Ct, true, &[], &Change::Add(&ips(5))).unwrap();
        assert_eq!(ok.entries_after.len(), 5);
        let err = plan_change(Carrier::Ct, true, &[], &Change::Add(&ips(6))).unwrap_err();
        assert_eq!(
            err,
            DirectionalError::TooManyIps {
                carrier: Carrier::Ct,
                max: 5,
                count: 6
            }
        );
        assert!(plan_change(Carrier::Ct, true, &[], &Change::Add(&domains(10))).is_ok());
        let err = plan_change(Carrier::Ct, true, &[], &Change::Add(&domains(11))).unwrap_err();
        assert!(matches!(err, DirectionalError::TooManyDomains { .. }));
        let mut mix = ips(5);
        mix.extend(domains(6));
        let err = plan_change(Carrier::Ct, true, &[], &Change::Add(&mix)).unwrap_err();
        assert!(matches!(
            err,
            DirectionalError::TooManyEntries {
                max: 10,
                count: 11,
                ..
            }
        ));
        assert_eq!(err.code(), ErrorCode::DirectionalLimit);
    }

    #[test]
    fn others_10_entries_any_mix() {
        for c in [Carrier::Cu, Carrier::Cmcc, Carrier::Trinet] {
            assert!(
                plan_change(c, true, &[], &Change::Add(&ips(10))).is_ok(),
                "{c}"
            );
            let err = plan_change(c, true, &[], &Change::Add(&ips(11))).unwrap_err();
            assert!(
                matches!(err, DirectionalError::TooManyEntries { max: 10, .. }),
                "{c}"
            );
        }
    }

    #[test]
    fn limits_count_current_entries() {
        let current: Vec<ExistingEntry> = ips(4)
            .into_iter()
            .enumerate()
            .map(|(i, e)| ExistingEntry {
                id: i.to_string(),
                entry: e,
                state: EntryState::Effective,
            })
            .collect();
        let two_more = vec!["10.9.9.1".to_string(), "10.9.9.2".to_string()];
        assert!(matches!(
            plan_change(Carrier::Ct, true, &current, &Change::Add(&two_more)),
            Err(DirectionalError::TooManyIps { .. })
        ));
        // an entry already present is not counted twice
        let again = vec!["10.0.0.1".to_string(), "10.9.9.1".to_string()];
        let p = plan_change(Carrier::Ct, true, &current, &Change::Add(&again)).unwrap();
        assert_eq!(p.entries_after.len(), 5);
        assert_eq!(p.added.len(), 1);
    }

    #[test]
    fn entry_state_rules() {
        let modifiable: Vec<EntryState> = EntryState::ALL
            .into_iter()
            .filter(|s| s.can_modify())
            .collect();
        assert_eq!(
            modifiable,
            vec![
                EntryState::NotYetEffective,
                EntryState::Effective,
                EntryState::ReviewRejected,
                EntryState::Modifying
            ]
        );
        let deletable: Vec<EntryState> = EntryState::ALL
            .into_iter()
            .filter(|s| s.can_delete())
            .collect();
        assert_eq!(
            deletable,
            vec![
                EntryState::NotYetEffective,
                EntryState::Effective,
                EntryState::ReviewRejected,
                EntryState::Modifying
            ]
        );
        for s in EntryState::ALL {
            let current = vec![
                ExistingEntry {
                    id: "a".into(),
                    entry: "10.0.0.1".into(),
                    state: s,
                },
                ExistingEntry {
                    id: "b".into(),
                    entry: "10.0.0.2".into(),
                    state: EntryState::Effective,
                },
            ];
            let m = plan_change(
                Carrier::Cmcc,
                true,
                &current,
                &Change::Modify {
                    id: "a",
                    entry: "10.0.0.3",
                },
            );
            assert_eq!(m.is_ok(), s.can_modify(), "modify {s:?}");
            let ids = vec!["a".to_string()];
            let d = plan_change(Carrier::Cmcc, true, &current, &Change::Delete(&ids));
            assert_eq!(d.is_ok(), s.can_delete(), "delete {s:?}");
            if let Err(e) = d {
                assert_eq!(e.code(), ErrorCode::DirectionalEntryState);
            }
        }
    }

    #[test]
    fn must_keep_one_entry() {
        let current = vec![ExistingEntry {
            id: "a".into(),
            entry: "10.0.0.1".into(),
            state: EntryState::Effective,
        }];
        let ids = vec!["a".to_string()];
        let err = plan_change(Carrier::Ct, true, &current, &Change::Delete(&ids)).unwrap_err();
        assert_eq!(err, DirectionalError::LastEntry);
        assert_eq!(err.code(), ErrorCode::DirectionalLastEntry);
        let missing = vec!["zz".to_string()];
        assert!(matches!(
            plan_change(Carrier::Ct, true, &current, &Change::Delete(&missing)),
            Err(DirectionalError::UnknownEntry(_))
        ));
    }

    #[test]
    fn eligibility() {
        assert!(batch_eligible(PurchaseType::NewPurchase, true));
        assert!(batch_eligible(PurchaseType::CardTransfer, true));
        assert!(!batch_eligible(PurchaseType::NewPurchase, false));
        assert!(!batch_eligible(PurchaseType::Renewal, true));
        let err = plan_change(Carrier::Ct, false, &[], &Change::Add(&ips(1))).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DirectionalNotEligible);
    }

    #[test]
    fn every_limits_row() {
        for c in Carrier::ALL {
            let l = limits(c);
            assert_eq!(l.max_entries, 10, "{c}");
        }
        assert_eq!(limits(Carrier::Ct).max_ips, Some(5));
        assert_eq!(limits(Carrier::Ct).max_domains, Some(10));
        assert_eq!(limits(Carrier::Cu).wildcards, WildcardRule::HttpDomainsOnly);
        assert!(limits(Carrier::Cu).append_http_wildcard_path);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            for c in Carrier::ALL {
                let _ = parse_for(c, &s);
            }
        }

        #[test]
        fn never_panics_on_url_soup(s in "[a-z*:/.0-9-]{0,40}") {
            let _ = parse_entry(&s);
        }

        #[test]
        fn valid_entries_round_trip(
            proto in prop::sample::select(vec!["http", "https", "tcp", "udp", "mqtt"]),
            wild in any::<bool>(),
            name in "[a-z][a-z0-9]{0,10}",
            port in prop::option::of(1u16..),
        ) {
            let host = if wild { format!("*.{name}.example.com") } else { format!("{name}.example.com") };
            let raw = match port {
                Some(p) => format!("{proto}://{host}:{p}"),
                None => format!("{proto}://{host}"),
            };
            let e = parse_entry(&raw).unwrap();
            let again = parse_entry(&e.to_string()).unwrap();
            prop_assert_eq!(again, e);
        }

        #[test]
        fn ipv4_round_trip(a in 0u8.., b in 0u8.., c in 0u8.., d in 0u8..) {
            let raw = format!("{a}.{b}.{c}.{d}");
            let e = parse_entry(&raw).unwrap();
            prop_assert_eq!(e.kind, HostKind::Ip);
            prop_assert_eq!(e.to_string(), raw);
        }
    }
}
