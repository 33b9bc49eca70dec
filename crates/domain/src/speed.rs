//! Speed-limit value sets per carrier (限速).
//!
//! Our API takes a speed in Kbps (1 Mbps = 1024 Kbps, as the carriers' own
//! tables do); `0` removes the limit. Each carrier offers only its own set;
//! China Telecom's API names speeds by code, kept here as data.
//!
//! China Mobile's API has `operate/network-speed` (91 = 2 Mbps, 92 = 1 Mbps,
//! 93 = 512 Kbps, 94 = 128 Kbps), but the reference service does not offer speed
//! limits for China Mobile cards (domain.md), so its set here is empty and the
//! capability table refuses the operation.

use crate::carrier::Carrier;

/// `0` in a speed-limit request: remove the limit.
pub const REMOVE_LIMIT: u32 = 0;

/// China Telecom `speedValue` codes: (code, Kbps). Code 31 is "unlimited".
pub const CT_SPEED_CODES: &[(u8, u32)] = &[
    (10, 1),
    (32, 64),
    (33, 256),
    (11, 512),
    (12, 1024),
    (13, 3 * 1024),
    (14, 5 * 1024),
    (15, 7 * 1024),
    (16, 10 * 1024),
    (17, 20 * 1024),
    (18, 30 * 1024),
    (19, 40 * 1024),
    (20, 50 * 1024),
    (21, 60 * 1024),
    (22, 70 * 1024),
    (23, 80 * 1024),
    (24, 90 * 1024),
    (25, 100 * 1024),
    (26, 110 * 1024),
    (27, 120 * 1024),
    (28, 130 * 1024),
    (29, 140 * 1024),
    (30, 150 * 1024),
];

/// China Telecom's code for "no limit".
pub const CT_UNLIMITED_CODE: u8 = 31;

/// China Unicom tiers in Kbps: 256 Kbps, 512 Kbps, 1 Mbps, 2 Mbps, 7.25 Mbps.
pub const CU_TIERS_KBPS: &[u32] = &[256, 512, 1024, 2048, 7424];

/// China Mobile's `serviceUsageState` codes (kept for the simulator; not offered).
pub const CMCC_SPEED_STATES: &[(u8, u32)] = &[(91, 2048), (92, 1024), (93, 512), (94, 128)];

/// Whether `kbps` is a speed this carrier offers (`0` = remove the limit is
/// offered wherever speed limits are).
pub fn offered(carrier: Carrier, kbps: u32) -> bool {
    match carrier {
        Carrier::Ct => kbps == REMOVE_LIMIT || ct_code(kbps).is_some(),
        Carrier::Cu => kbps == REMOVE_LIMIT || CU_TIERS_KBPS.contains(&kbps),
        Carrier::Cmcc | Carrier::Trinet => false,
    }
}

/// The values a carrier offers, for error messages and the CLI.
pub fn values(carrier: Carrier) -> Vec<u32> {
    match carrier {
        Carrier::Ct => {
            let mut v: Vec<u32> = CT_SPEED_CODES.iter().map(|(_, k)| *k).collect();
            v.sort_unstable();
            v
        }
        Carrier::Cu => CU_TIERS_KBPS.to_vec(),
        Carrier::Cmcc | Carrier::Trinet => Vec::new(),
    }
}

/// China Telecom: Kbps -> `speedValue` code (`0` -> 31 unlimited).
pub fn ct_code(kbps: u32) -> Option<u8> {
    if kbps == REMOVE_LIMIT {
        return Some(CT_UNLIMITED_CODE);
    }
    CT_SPEED_CODES
        .iter()
        .find(|(_, k)| *k == kbps)
        .map(|(c, _)| *c)
}

/// China Telecom: `speedValue` code -> Kbps (`31` -> 0, unlimited).
pub fn ct_kbps(code: u8) -> Option<u32> {
    if code == CT_UNLIMITED_CODE {
        return Some(REMOVE_LIMIT);
    }
    CT_SPEED_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, k)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_codes_from_carriers_md() {
        let expect = [
            (10, 1),
            (32, 64),
            (33, 256),
            (11, 512),
            (12, 1024),
            (13, 3072),
            (14, 5120),
            (15, 7168),
            (16, 10240),
            (30, 153600),
            (31, 0),
        ];
        for (code, kbps) in expect {
            assert_eq!(ct_code(kbps), Some(code), "{kbps}");
            assert_eq!(ct_kbps(code), Some(kbps), "{code}");
        }
        // 16..=30 are 10..=150 Mbps in 10 Mbps steps
        for code in 16u8..=30 {
            assert_eq!(ct_kbps(code), Some(u32::from(code - 15) * 10 * 1024));
        }
        assert_eq!(ct_kbps(9), None);
        assert_eq!(ct_code(100), None);
        assert_eq!(values(Carrier::Ct).len(), 23);
    }

    #[test]
    fn sets_per_carrier() {
        assert!(offered(Carrier::Ct, 512));
        assert!(!offered(Carrier::Ct, 2048));
        assert!(offered(Carrier::Cu, 2048));
        assert!(offered(Carrier::Cu, 7424));
        assert!(!offered(Carrier::Cu, 64));
        assert!(offered(Carrier::Cu, 0));
        assert!(!offered(Carrier::Cmcc, 512));
        assert!(!offered(Carrier::Trinet, 512));
        assert!(values(Carrier::Cmcc).is_empty());
    }
}
