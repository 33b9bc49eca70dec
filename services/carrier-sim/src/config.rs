//! Simulator settings: a JSON file (`carrier-sim --config sim.json`), the
//! environment (`SIM_*`), or built in code by tests. Faults, limits and
//! completion behaviour can also be changed at run time through the admin API.

use gsl_domain::carrier::Carrier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rate limit: at most `limit` calls in any window of `window_ms`
/// milliseconds (a sliding window: "N per second" strictly, with no burst
/// beyond N). `limit = 0` switches the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub limit: u32,
    #[serde(default = "one_second")]
    pub window_ms: u64,
}

fn one_second() -> u64 {
    1000
}

impl Limit {
    pub const OFF: Limit = Limit {
        limit: 0,
        window_ms: 1000,
    };
    pub fn per_second(n: u32) -> Limit {
        Limit {
            limit: n,
            window_ms: 1000,
        }
    }
}

/// API classes a carrier limits separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiClass {
    /// Calls that change something.
    Change,
    /// Single-item queries (order status, card status).
    Query,
    /// List calls.
    List,
}

/// Per-class limits of one carrier account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub change: Limit,
    pub query: Limit,
    pub list: Limit,
    /// One budget for every call of the account (changes, queries and lists
    /// all spend the `change` limit), as a carrier that counts calls per API
    /// user does.
    #[serde(default)]
    pub shared: bool,
}

impl Default for Limits {
    /// The reference service: 5 calls per second per user, 1 per second for lists.
    fn default() -> Self {
        Limits {
            change: Limit::per_second(5),
            query: Limit::per_second(5),
            list: Limit::per_second(1),
            shared: false,
        }
    }
}

impl Limits {
    pub fn off() -> Limits {
        Limits {
            change: Limit::OFF,
            query: Limit::OFF,
            list: Limit::OFF,
            shared: false,
        }
    }

    /// Every call of the account spends one budget of `limit` per second.
    pub fn one_budget(limit: u32) -> Limits {
        Limits {
            change: Limit::per_second(limit),
            shared: true,
            ..Limits::off()
        }
    }

    pub fn get(&self, class: ApiClass) -> Limit {
        match class {
            ApiClass::Change => self.change,
            ApiClass::Query => self.query,
            ApiClass::List => self.list,
        }
    }
}

/// Misbehaviour on demand. Rates are probabilities in 0..=1 per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Answer HTTP 503 without doing anything.
    pub error_rate: f64,
    /// Answer with the carrier's own "system busy" code, without doing anything.
    pub busy_rate: f64,
    /// Close the connection before doing anything.
    pub drop_before_rate: f64,
    /// Do the work, then close the connection without an answer (the caller
    /// cannot know whether the change was accepted).
    pub drop_after_rate: f64,
    /// Do the work, then answer HTTP 500 (a 5xx does not prove nothing was
    /// done).
    pub error_after_rate: f64,
    /// Added latency: fixed part.
    pub latency_ms: u64,
    /// Added latency: uniform jitter on top.
    pub jitter_ms: u64,
    /// Probability of a latency spike, and its length.
    pub spike_rate: f64,
    pub spike_ms: u64,
}

/// How accepted changes complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Completion {
    /// `sla`: a delay drawn between the SLA table's min and max (working
    /// time, on the scaled clock); `immediate`: complete at once (benchmarks).
    pub mode: CompletionMode,
    /// Share of changes that complete late (1.2x to 2x the SLA maximum).
    pub late_share: f64,
    /// Share of changes that fail after being accepted.
    pub fail_share: f64,
    /// `delay`: every change completes this long after acceptance (scaled
    /// clock), for benchmarks that need a short, known completion time.
    pub delay_ms: u64,
}

impl Default for Completion {
    fn default() -> Self {
        Completion {
            mode: CompletionMode::Sla,
            late_share: 0.0,
            fail_share: 0.0,
            delay_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CompletionMode {
    #[default]
    Sla,
    Immediate,
    /// `delay_ms` after acceptance.
    Delay,
}

/// Credentials of the one account each platform serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// China Mobile `appid` / `password`.
    pub cmcc_appid: String,
    pub cmcc_password: String,
    /// China Mobile token lifetime, seconds.
    pub cmcc_token_ttl_s: u64,
    /// China Telecom 5GCMP `AppKey` / secret.
    pub ct_app_key: String,
    pub ct_secret: String,
    /// China Telecom DCP `user_id`, password and 9-character key.
    pub ct_dcp_user: String,
    pub ct_dcp_password: String,
    pub ct_dcp_key: String,
    /// 5GCMP customer number (`custNumber` of the batch queries).
    pub ct_cust_number: String,
    /// Largest accepted difference between `Timestamp` and the clock, seconds.
    pub ct_max_skew_s: i64,
    /// China Unicom Jasper user / API key (HTTP Basic).
    pub cu_user: String,
    pub cu_api_key: String,
    /// Tri-net API key (Bearer).
    pub trinet_api_key: String,
}

impl Credentials {
    /// The user and secret a client presents to carrier `c` (tri-net has
    /// only an API key).
    pub fn account(&self, c: Carrier) -> (&str, &str) {
        match c {
            Carrier::Cmcc => (&self.cmcc_appid, &self.cmcc_password),
            Carrier::Ct => (&self.ct_app_key, &self.ct_secret),
            Carrier::Cu => (&self.cu_user, &self.cu_api_key),
            Carrier::Trinet => ("", &self.trinet_api_key),
        }
    }
}

impl Credentials {
    /// The adapter's carrier-specific settings for this account (China
    /// Telecom's DCP login), as environment pairs.
    pub fn adapter_env(&self, c: Carrier) -> Vec<(&'static str, String)> {
        match c {
            Carrier::Ct => vec![
                ("GSL_CT_DCP_USER", self.ct_dcp_user.clone()),
                ("GSL_CT_DCP_PASSWORD", self.ct_dcp_password.clone()),
                ("GSL_CT_DCP_KEY", self.ct_dcp_key.clone()),
                ("GSL_CT_CUST_NUMBER", self.ct_cust_number.clone()),
            ],
            _ => Vec::new(),
        }
    }
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            cmcc_appid: "gslcmcc".into(),
            cmcc_password: "cmcc-secret".into(),
            cmcc_token_ttl_s: 3600,
            ct_app_key: "gslct".into(),
            ct_secret: "ct-secret".into(),
            ct_dcp_user: "gsldcp".into(),
            ct_dcp_password: "dcp-secret".into(),
            ct_dcp_key: "k9X2m7Q4p".into(),
            ct_cust_number: "C0001".into(),
            ct_max_skew_s: 300,
            cu_user: "gslcu".into(),
            cu_api_key: "cu-secret".into(),
            trinet_api_key: "trinet-secret".into(),
        }
    }
}

/// Per-carrier rules the simulator enforces on its own side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CarrierRules {
    /// China Mobile: the per-card repeat window of status changes, seconds.
    /// `cmcc.md`: 3 min (newer doc) or 30 min (older doc); the simulator
    /// takes the safe reading, 30 min.
    pub cmcc_status_spacing_s: i64,
    /// China Telecom: successful rebinds per card per calendar month (UTC+8).
    pub ct_rebinds_per_month: u32,
    /// Tri-net: seconds between switches for cards without the SDK.
    pub trinet_switch_spacing_s: i64,
    /// China Unicom account data: communication plan name -> speed (Kbps).
    pub cu_speed_plans: BTreeMap<String, u32>,
    /// China Unicom account data: rate plan name -> usage cap (MB, -1 none).
    pub cu_cap_plans: BTreeMap<String, i64>,
    /// China Unicom: the day of the month a billing cycle begins (domain.md:
    /// the 27th).
    pub cu_cycle_start_day: u32,
    /// China Telecom: access numbers one `batchQryFlowByMonth` takes (not
    /// found in the sources: `ct.md` says a setting, 100 like BQ018).
    pub ct_usage_batch: usize,
}

impl Default for CarrierRules {
    fn default() -> Self {
        CarrierRules {
            cmcc_status_spacing_s: 1800,
            ct_rebinds_per_month: 2,
            trinet_switch_spacing_s: 300,
            cu_speed_plans: BTreeMap::new(),
            cu_cap_plans: BTreeMap::new(),
            cu_cycle_start_day: 27,
            ct_usage_batch: 100,
        }
    }
}

/// Answers no public source documents. The simulator must answer
/// something; each value here is a **labelled simulator setting**, not a
/// carrier fact, and adapters must not depend on it (they keep the code and
/// text under "carrier refused").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Undocumented {
    /// China Mobile: envelope `status` when over the rate limit.
    pub cmcc_over_limit: String,
    /// China Mobile: envelope `status` when a card is inside its repeat window
    /// (single change) or any card of a batch is.
    pub cmcc_repeat_window: String,
    /// China Mobile: envelope `status` for a cap on a card that is not in a pool.
    pub cmcc_not_pooled: String,
    /// China Mobile: share of single status changes answered without an
    /// `orderNum` (some platforms omit it; `cmcc.md`).
    pub cmcc_omit_order_num_share: f64,
    /// China Telecom: `RspCode` of a refused `Sign` / `AppKey` / `Timestamp`.
    pub ct_auth_failed: String,
    /// China Telecom: `RspCode` when over the rate limit.
    pub ct_over_limit: String,
    /// China Telecom: `RspCode` of a refusal for the card's state.
    pub ct_illegal_state: String,
    /// China Unicom: HTTP status when over the 5 calls/s policy (Jasper
    /// documents the policy, not the answer).
    pub cu_over_limit_status: u16,
    /// China Unicom `errorCode`s of refusals (Cisco's per-API lists are not
    /// in the sources): bad request, unknown device, state, busy.
    pub cu_bad_request: String,
    pub cu_unknown_device: String,
    pub cu_illegal_state: String,
    pub cu_busy: String,
    /// China Unicom's over-limit `errorCode`: `cu.md` documents REST
    /// `40000029` (the default); only its HTTP status is a simulator setting.
    pub cu_over_limit: String,
}

impl Default for Undocumented {
    fn default() -> Self {
        Undocumented {
            cmcc_over_limit: "12006".into(),
            cmcc_repeat_window: "12090".into(),
            cmcc_not_pooled: "12093".into(),
            cmcc_omit_order_num_share: 0.0,
            ct_auth_failed: "-3".into(),
            ct_over_limit: "-8".into(),
            ct_illegal_state: "-1".into(),
            cu_over_limit_status: 429,
            cu_bad_request: "10000003".into(),
            cu_unknown_device: "20000001".into(),
            cu_illegal_state: "20000016".into(),
            cu_busy: "10000024".into(),
            cu_over_limit: "40000029".into(),
        }
    }
}

/// Everything the simulator needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// `127.0.0.1:0` picks a free port.
    pub listen: String,
    /// Seed of the generated inventory.
    pub seed: u64,
    /// Generated cards per carrier (up to 1,000,000 and beyond).
    pub cards_per_carrier: u64,
    /// Every generated card starts in this status instead of the usual mix
    /// (benchmarks: `activatable` for large activation orders).
    pub all_status: Option<gsl_domain::card::SimStatus>,
    /// Scaled clock: virtual start (RFC 3339), real anchor (unix seconds), scale.
    pub clock_start: Option<String>,
    pub clock_anchor: Option<String>,
    pub time_scale: Option<f64>,
    pub credentials: Credentials,
    pub rules: CarrierRules,
    pub undocumented: Undocumented,
    pub completion: Completion,
    /// Per-carrier limits (missing carriers get the defaults).
    pub limits: BTreeMap<Carrier, Limits>,
    pub faults: BTreeMap<Carrier, Faults>,
    /// Cards per carrier the carrier changes on its own each (virtual) hour
    /// (stops, expiry, IMEI and real-name changes; `engine::drift`); 0: none.
    pub drift_per_hour: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:0".into(),
            seed: 1,
            cards_per_carrier: 10_000,
            all_status: None,
            clock_start: None,
            clock_anchor: None,
            time_scale: None,
            credentials: Credentials::default(),
            rules: CarrierRules::default(),
            undocumented: Undocumented::default(),
            completion: Completion::default(),
            limits: BTreeMap::new(),
            faults: BTreeMap::new(),
            drift_per_hour: 0.0,
        }
    }
}

impl SimConfig {
    /// Every limit off and every change completing at once: for benchmarks.
    pub fn unlimited() -> SimConfig {
        let mut c = SimConfig::default();
        for carrier in Carrier::ALL {
            c.limits.insert(carrier, Limits::off());
        }
        c.completion.mode = CompletionMode::Immediate;
        c
    }

    pub fn limits_for(&self, c: Carrier) -> Limits {
        self.limits.get(&c).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_defaults() {
        let c: SimConfig = serde_json::from_str(
            r#"{"cards_per_carrier": 5, "limits": {"ct": {"change": {"limit": 50}, "query": {"limit": 0}, "list": {"limit": 1}}}}"#,
        )
        .unwrap();
        assert_eq!(c.cards_per_carrier, 5);
        assert_eq!(c.limits_for(Carrier::Ct).change, Limit::per_second(50));
        assert_eq!(c.limits_for(Carrier::Cmcc), Limits::default());
        assert_eq!(c.rules.ct_rebinds_per_month, 2);
    }
}
