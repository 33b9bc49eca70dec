//! The card inventory: deterministic from a seed, copy-on-write.
//!
//! Card `n` of a carrier is a pure function of `(seed, carrier, n)`: its ICCID
//! (a valid issuer prefix of the carrier, the seed, the serial, a Luhn
//! digit), MSISDN, IMSI, status, pool and real-name flags. Only cards that were
//! changed or created through the admin API are stored. So a platform with
//! 1,000,000 cards per carrier starts instantly and its memory grows with the
//! cards actually touched, not with the inventory size.

use chrono::{DateTime, Utc};
use gsl_domain::card::{SimStatus, StopReason, TriNetVersion};
use gsl_domain::carrier::Carrier;
use gsl_domain::ids::{Iccid, Imei};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Everything the simulator knows about a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardRecord {
    /// ICCID, or the container id of a tri-net card.
    pub id: String,
    pub msisdn: String,
    pub imsi: String,
    pub status: SimStatus,
    pub stop_reason: StopReason,
    pub pooled: bool,
    pub real_named: bool,
    pub imei: Option<String>,
    /// Kbps; 0 = no limit.
    pub speed_kbps: u32,
    /// -1 = no threshold.
    pub threshold_mb: i64,
    pub cut_net: bool,
    pub region: Option<u16>,
    pub batch_no: String,
    /// Tri-net only.
    pub trinet_version: Option<TriNetVersion>,
    pub active_profile: Option<Carrier>,
    pub profiles: Vec<String>,
    pub policy: Option<String>,
    /// Carrier-side spacing and quota bookkeeping.
    #[serde(default)]
    pub last_status_change: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_switch: Option<DateTime<Utc>>,
    /// Rebinds reserved or done per CST month (`yyyymm` -> count).
    #[serde(default)]
    pub rebinds: BTreeMap<u32, u32>,
    /// A stop was accepted and has not completed.
    #[serde(default)]
    pub pending_stop: bool,
    /// China Unicom plan names (account data).
    #[serde(default)]
    pub rate_plan: String,
    #[serde(default)]
    pub communication_plan: String,
    /// When a field the carriers' card reads show last changed (status,
    /// stop reason, real-name, IMEI, profile, network); `None`: never since
    /// the inventory was generated ([`GENERATED_AT`]).
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The change time of a card nothing has changed since it was generated.
pub const GENERATED_AT: &str = "2026-01-01T00:00:00Z";

/// [`GENERATED_AT`] as a time.
pub fn generated_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(GENERATED_AT)
        .expect("a valid time")
        .with_timezone(&Utc)
}

impl CardRecord {
    /// When the card last changed.
    pub fn changed_at(&self) -> DateTime<Utc> {
        self.updated_at.unwrap_or_else(generated_at)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const TRINET_PREFIX: &str = "TRI";
/// Tri-net profiles live in a separate serial range of each carrier's space.
const PROFILE_OFFSET: u64 = 500_000_000;

/// The generated part of the inventory.
#[derive(Debug, Clone)]
pub struct Generator {
    pub carrier: Carrier,
    pub seed: u64,
    pub count: u64,
    /// Every card in this status (with no stop reason) instead of the mix.
    pub all_status: Option<SimStatus>,
}

impl Generator {
    fn seed_part(&self) -> u64 {
        self.seed % 1000
    }

    fn prefixes(carrier: Carrier) -> Vec<&'static str> {
        carrier.issuer_prefixes().collect()
    }

    fn iccid_in(carrier: Carrier, seed_part: u64, serial: u64) -> String {
        let prefixes = Generator::prefixes(carrier);
        let prefix = prefixes[(serial % prefixes.len() as u64) as usize];
        let payload = format!("{prefix}{seed_part:03}{serial:09}");
        Iccid::from_payload(&payload)
            .expect("generated payloads are 18 digits starting 8986")
            .as_str()
            .to_owned()
    }

    /// The id of generated card `serial`.
    pub fn id_at(&self, serial: u64) -> String {
        match self.carrier {
            Carrier::Trinet => format!("{TRINET_PREFIX}{:03}{serial:09}", self.seed_part()),
            c => Generator::iccid_in(c, self.seed_part(), serial),
        }
    }

    /// The serial of a generated card id, if `id` is one.
    pub fn serial_of(&self, id: &str) -> Option<u64> {
        let (serial, want) = match self.carrier {
            Carrier::Trinet => {
                let rest = id.strip_prefix(TRINET_PREFIX)?;
                if rest.len() != 12 || !rest.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let seed: u64 = rest[..3].parse().ok()?;
                if seed != self.seed_part() {
                    return None;
                }
                let serial: u64 = rest[3..].parse().ok()?;
                (serial, self.id_at(serial))
            }
            c => {
                if id.len() != 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let seed: u64 = id[6..9].parse().ok()?;
                if seed != self.seed_part() {
                    return None;
                }
                let serial: u64 = id[9..18].parse().ok()?;
                (serial, Generator::iccid_in(c, self.seed_part(), serial))
            }
        };
        (serial < self.count && want == id).then_some(serial)
    }

    /// The MSISDN (China Mobile) or access number (China Telecom) of
    /// generated card `serial`: `14` + carrier digit + seed + serial, 13
    /// digits, so a carrier call that names a card by number is answered
    /// without an index over the whole inventory.
    pub fn msisdn_at(&self, serial: u64) -> String {
        format!(
            "14{}{:03}{:07}",
            self.carrier.index() + 1,
            self.seed_part(),
            serial % 10_000_000
        )
    }

    /// The serial of a generated card's number, if `msisdn` is one.
    pub fn serial_of_msisdn(&self, msisdn: &str) -> Option<u64> {
        if msisdn.len() != 13 || !msisdn.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let serial: u64 = msisdn[6..].parse().ok()?;
        (serial < self.count && self.msisdn_at(serial) == msisdn).then_some(serial)
    }

    fn mix(h: u64) -> (SimStatus, StopReason) {
        match h % 100 {
            0..=59 => (SimStatus::InUse, StopReason::Normal),
            60..=69 => (SimStatus::Stopped, StopReason::OnRequest),
            70..=72 => (SimStatus::Stopped, StopReason::Violation),
            73..=74 => (SimStatus::Stopped, StopReason::DeviceSeparation),
            75..=76 => (SimStatus::Stopped, StopReason::OverThreshold),
            77 => (SimStatus::Stopped, StopReason::PoolExhausted),
            78..=83 => (SimStatus::Testable, StopReason::Normal),
            84..=89 => (SimStatus::Activatable, StopReason::Normal),
            90..=95 => (SimStatus::NotActivated, StopReason::Normal),
            _ => (SimStatus::Closed, StopReason::Normal),
        }
    }

    /// Generated card `serial`, as it is before anything changes it.
    pub fn card(&self, serial: u64) -> CardRecord {
        let h = splitmix(self.seed ^ splitmix(serial ^ ((self.carrier.index() as u64) << 56)));
        let (status, stop_reason) = match self.all_status {
            Some(s) => (
                s,
                if s == SimStatus::Stopped {
                    StopReason::OnRequest
                } else {
                    StopReason::Normal
                },
            ),
            None => Generator::mix(h),
        };
        let imei_payload = format!("86{:012}", (h >> 20) % 1_000_000_000_000);
        let imei = Imei::from_payload(&imei_payload)
            .expect("14 digits")
            .as_str()
            .to_owned();
        let (imsi_prefix, trinet) = match self.carrier {
            Carrier::Cmcc => ("46004", false),
            Carrier::Ct => ("46011", false),
            Carrier::Cu => ("46006", false),
            Carrier::Trinet => ("46004", true),
        };
        let profiles = if trinet {
            [Carrier::Cmcc, Carrier::Ct, Carrier::Cu]
                .into_iter()
                .map(|c| Generator::iccid_in(c, self.seed_part(), PROFILE_OFFSET + serial))
                .collect()
        } else {
            Vec::new()
        };
        CardRecord {
            id: self.id_at(serial),
            msisdn: self.msisdn_at(serial),
            imsi: format!(
                "{imsi_prefix}{:03}{:07}",
                self.seed_part(),
                serial % 10_000_000
            ),
            status,
            stop_reason,
            pooled: (h >> 8) % 100 < 30,
            real_named: (h >> 16) % 100 < 50,
            imei: (status == SimStatus::InUse || status == SimStatus::Stopped).then_some(imei),
            speed_kbps: 0,
            threshold_mb: -1,
            cut_net: false,
            region: None,
            batch_no: format!(
                "B{}{:03}{:06}",
                self.carrier.as_str().to_ascii_uppercase(),
                self.seed_part(),
                serial / 1000
            ),
            rate_plan: String::new(),
            communication_plan: String::new(),
            trinet_version: trinet.then_some(if (h >> 24) % 100 < 30 {
                TriNetVersion::Sdk
            } else {
                TriNetVersion::NoSdk
            }),
            active_profile: trinet.then_some(Carrier::Cu),
            profiles,
            policy: None,
            last_status_change: None,
            last_switch: None,
            rebinds: BTreeMap::new(),
            pending_stop: false,
            updated_at: None,
        }
    }
}

/// One carrier's cards: generated ones plus the changed or created ones.
#[derive(Debug)]
pub struct Inventory {
    pub generator: Generator,
    changed: HashMap<String, CardRecord>,
    /// Numbers of cards created through the admin API.
    by_msisdn: HashMap<String, String>,
    by_imsi: HashMap<String, String>,
}

impl Inventory {
    pub fn new(
        carrier: Carrier,
        seed: u64,
        count: u64,
        all_status: Option<SimStatus>,
    ) -> Inventory {
        Inventory {
            generator: Generator {
                carrier,
                seed,
                count,
                all_status,
            },
            changed: HashMap::new(),
            by_msisdn: HashMap::new(),
            by_imsi: HashMap::new(),
        }
    }

    /// The card as it is now.
    pub fn get(&self, id: &str) -> Option<CardRecord> {
        if let Some(c) = self.changed.get(id) {
            return Some(c.clone());
        }
        self.generator.serial_of(id).map(|s| self.generator.card(s))
    }

    /// A mutable card, materialised on first write.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut CardRecord> {
        if !self.changed.contains_key(id) {
            let serial = self.generator.serial_of(id)?;
            let card = self.generator.card(serial);
            self.changed.insert(id.to_owned(), card);
        }
        self.changed.get_mut(id)
    }

    /// Create or replace a card (admin API).
    pub fn put(&mut self, card: CardRecord) {
        if !card.msisdn.is_empty() {
            self.by_msisdn.insert(card.msisdn.clone(), card.id.clone());
        }
        if !card.imsi.is_empty() {
            self.by_imsi.insert(card.imsi.clone(), card.id.clone());
        }
        self.changed.insert(card.id.clone(), card);
    }

    /// The card key (ICCID or container id) of a card named by its MSISDN /
    /// access number.
    pub fn id_by_msisdn(&self, msisdn: &str) -> Option<String> {
        if let Some(id) = self.by_msisdn.get(msisdn) {
            return Some(id.clone());
        }
        let serial = self.generator.serial_of_msisdn(msisdn)?;
        let id = self.generator.id_at(serial);
        // A card re-created by the admin API under another number is not
        // found by its generated one.
        match self.changed.get(&id) {
            Some(c) if c.msisdn != msisdn => None,
            _ => Some(id),
        }
    }

    /// The card key of a card named by its IMSI (created or changed cards,
    /// and generated ones).
    pub fn id_by_imsi(&self, imsi: &str) -> Option<String> {
        if let Some(id) = self.by_imsi.get(imsi) {
            return Some(id.clone());
        }
        if imsi.len() != 15 {
            return None;
        }
        let serial: u64 = imsi[8..].parse().ok()?;
        let card = self.get(&self.generator.id_at(serial))?;
        (card.imsi == imsi).then_some(card.id)
    }

    /// Cards stored beyond the generated ones.
    pub fn materialised(&self) -> usize {
        self.changed.len()
    }

    /// The id of generated card `serial`.
    pub fn generator_id(&self, serial: u64) -> String {
        self.generator.id_at(serial)
    }

    /// Stamped cards (changed since generation) with `updated_at >= since`,
    /// in (`updated_at`, id) order, after the keyset position `after`.
    pub fn changed_since(
        &self,
        since: DateTime<Utc>,
        after: Option<(DateTime<Utc>, &str)>,
        limit: usize,
    ) -> Vec<CardRecord> {
        let mut v: Vec<&CardRecord> = self
            .changed
            .values()
            .filter(|c| c.updated_at.is_some_and(|t| t >= since))
            .filter(|c| match after {
                None => true,
                Some((t, id)) => (c.changed_at(), c.id.as_str()) > (t, id),
            })
            .collect();
        v.sort_by(|a, b| (a.changed_at(), &a.id).cmp(&(b.changed_at(), &b.id)));
        v.into_iter().take(limit).cloned().collect()
    }

    /// Generated cards never stamped, from serial `from`: at most `limit`,
    /// and the serial to continue from (`None`: the end).
    pub fn unstamped_from(&self, from: u64, limit: usize) -> (Vec<CardRecord>, Option<u64>) {
        let mut out = Vec::new();
        let mut s = from;
        while s < self.generator.count && out.len() < limit {
            let id = self.generator.id_at(s);
            match self.changed.get(&id) {
                Some(c) if c.updated_at.is_some() => {}
                Some(c) => out.push(c.clone()),
                None => out.push(self.generator.card(s)),
            }
            s += 1;
        }
        (out, (s < self.generator.count).then_some(s))
    }

    /// A page of generated cards in their current state.
    pub fn page(&self, offset: u64, limit: u64) -> Vec<CardRecord> {
        let end = (offset.saturating_add(limit)).min(self.generator.count);
        (offset..end)
            .map(|s| {
                let id = self.generator.id_at(s);
                self.changed
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| self.generator.card(s))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsl_domain::ids::CardId;

    #[test]
    fn generated_ids_are_valid_and_routable() {
        for c in [Carrier::Cmcc, Carrier::Ct, Carrier::Cu] {
            let g = Generator {
                carrier: c,
                seed: 7,
                count: 1000,
                all_status: None,
            };
            for s in [0, 1, 2, 999] {
                let id = g.id_at(s);
                let iccid = Iccid::parse(&id).unwrap();
                assert_eq!(iccid.carrier(), Some(c), "{id}");
                assert_eq!(g.serial_of(&id), Some(s));
            }
            assert_eq!(g.serial_of(&g.id_at(1000)), None, "beyond count");
            let other_seed = Generator {
                carrier: c,
                seed: 8,
                count: 1000,
                all_status: None,
            };
            assert_eq!(other_seed.serial_of(&g.id_at(5)), None);
        }
        let t = Generator {
            carrier: Carrier::Trinet,
            seed: 7,
            count: 10,
            all_status: None,
        };
        let id = t.id_at(3);
        assert!(matches!(CardId::parse(&id).unwrap(), CardId::Container(_)));
        assert_eq!(t.serial_of(&id), Some(3));
        let card = t.card(3);
        assert_eq!(card.profiles.len(), 3);
        assert!(card.trinet_version.is_some());
    }

    #[test]
    fn deterministic_with_a_mix_of_states() {
        let g = Generator {
            carrier: Carrier::Ct,
            seed: 42,
            count: 10_000,
            all_status: None,
        };
        assert_eq!(g.card(17), g.card(17));
        let cards: Vec<CardRecord> = (0..2000).map(|s| g.card(s)).collect();
        let in_use = cards
            .iter()
            .filter(|c| c.status == SimStatus::InUse)
            .count();
        assert!((1000..1400).contains(&in_use), "{in_use}");
        assert!(
            cards
                .iter()
                .any(|c| c.status == SimStatus::Stopped && c.stop_reason == StopReason::OnRequest)
        );
        assert!(cards.iter().any(|c| c.status == SimStatus::Activatable));
        assert!(cards.iter().any(|c| c.pooled) && cards.iter().any(|c| !c.pooled));
        assert!(cards.iter().any(|c| c.real_named));
        assert!(
            cards
                .iter()
                .all(|c| c.msisdn.len() == 13 && c.imsi.len() == 15)
        );
    }

    #[test]
    fn all_status_overrides_the_mix() {
        let g = Generator {
            carrier: Carrier::Cmcc,
            seed: 42,
            count: 1000,
            all_status: Some(SimStatus::Activatable),
        };
        assert!((0..1000).all(|s| g.card(s).status == SimStatus::Activatable));
        let stopped = Generator {
            all_status: Some(SimStatus::Stopped),
            ..g
        };
        let c = stopped.card(9);
        assert_eq!(
            (c.status, c.stop_reason),
            (SimStatus::Stopped, StopReason::OnRequest)
        );
    }

    #[test]
    fn copy_on_write() {
        let mut inv = Inventory::new(Carrier::Cu, 1, 1_000_000, None);
        let id = inv.generator.id_at(123_456);
        assert_eq!(inv.materialised(), 0);
        inv.get_mut(&id).unwrap().speed_kbps = 512;
        assert_eq!(inv.materialised(), 1);
        assert_eq!(inv.get(&id).unwrap().speed_kbps, 512);
        assert!(inv.get("8986019999999999999").is_none());
        assert_eq!(inv.page(123_456, 1)[0].speed_kbps, 512);
    }
}

#[cfg(test)]
mod numbers {
    use super::*;

    #[test]
    fn cards_are_found_by_msisdn_and_imsi() {
        let mut inv = Inventory::new(Carrier::Cmcc, 7, 1_000, None);
        let c = inv.get(&inv.generator.id_at(321)).unwrap();
        assert_eq!(c.msisdn.len(), 13);
        assert_eq!(inv.id_by_msisdn(&c.msisdn).as_deref(), Some(c.id.as_str()));
        assert_eq!(inv.id_by_imsi(&c.imsi).as_deref(), Some(c.id.as_str()));
        assert!(
            inv.id_by_msisdn("1410079999999").is_none(),
            "beyond the count"
        );
        let mut made = c.clone();
        made.id = "89860000000000000001".into();
        made.msisdn = "1440000000001".into();
        made.imsi = "460040000000001".into();
        inv.put(made);
        assert_eq!(
            inv.id_by_msisdn("1440000000001").as_deref(),
            Some("89860000000000000001")
        );
        assert_eq!(
            inv.id_by_imsi("460040000000001").as_deref(),
            Some("89860000000000000001")
        );
        // Another carrier's generated numbers are not this one's.
        let ct = Inventory::new(Carrier::Ct, 7, 1_000, None);
        assert!(ct.id_by_msisdn(&c.msisdn).is_none());
    }
}
