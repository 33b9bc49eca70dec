//! Adapter settings: from the environment (`GSL_*`), or built by tests.

use gsl_bus::BusConfig;
use gsl_domain::carrier::Carrier;
use gsl_domain::clock::Clock;
use gsl_secret::Secret;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A carrier rate limit for one API class: `limit` calls per `window`.
/// `limit = 0`: no pacing at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
}

impl Rate {
    pub const OFF: Rate = Rate {
        limit: 0,
        window: Duration::from_secs(1),
    };

    pub fn per_second(n: u32) -> Rate {
        Rate {
            limit: n,
            window: Duration::from_secs(1),
        }
    }

    pub fn parse(s: &str) -> Result<Rate, String> {
        // "50", "50/s", "1/s", "0" (off), "300/min"
        let s = s.trim();
        let (n, per) = s.split_once('/').unwrap_or((s, "s"));
        let limit: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("rate {s:?}: expected N, N/s or N/min"))?;
        let window = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            other => return Err(format!("rate {s:?}: unknown unit {other:?}")),
        };
        Ok(Rate { limit, window })
    }
}

/// How replicas share a carrier's rate budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Each replica paces alone with governor (one replica only).
    Local,
    /// Replicas lease evenly spaced call slots from a KV record (see `pacing`).
    Shared,
}

/// Everything an adapter needs. Every credential is a [`Secret`], so
/// `Debug` prints none of them. Every default is written once, in
/// [`AdapterConfig::new`]; `from_env` only overrides (`docs/operations.md`
/// lists them, checked against this by a test).
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub carrier: Carrier,
    /// Carrier platform base URL, e.g. `http://sim:8080/ct` (`GSL_CARRIER_URL`).
    pub carrier_url: String,
    /// Carrier credentials, carrier-specific meaning (`GSL_CARRIER_USER`, `GSL_CARRIER_SECRET`).
    pub carrier_user: String,
    pub carrier_secret: Secret,
    pub bus: BusConfig,
    /// The gateway's gRPC address for Results (`GSL_GATEWAY_URL`).
    pub gateway_url: String,
    /// CA certificate (PEM file) of a gateway behind TLS (`GSL_GATEWAY_CA_CERT`;
    /// `GSL_GATEWAY_URL` then starts with `https://`).
    pub gateway_ca_cert: Option<std::path::PathBuf>,
    /// Adapter credential for Results (`GSL_ADAPTER_TOKEN`).
    pub adapter_token: Secret,
    /// Admin HTTP (`GSL_ADMIN_LISTEN`:9091`).
    pub admin_listen: String,
    /// Items processed at once by this replica (`GSL_CONCURRENCY`).
    pub concurrency: usize,
    /// Carrier limits per API class (`GSL_RATE_CHANGE`, `GSL_RATE_QUERY`;
    /// default 5/s, 5/s as the reference service). Every call, query or
    /// change, spends one of them (there is no separate list budget: the
    /// contracts count every call).
    pub rate_change: Rate,
    pub rate_query: Rate,
    /// Share of the limit actually used (`GSL_RATE_SAFETY`):
    /// the slack it leaves in every window covers late slots and network
    /// jitter, so no sliding window at the carrier sees more than the limit
    /// (`pacing`).
    pub rate_safety: f64,
    /// `GSL_RATE_BUDGET=shared|local` (default shared).
    pub budget: Budget,
    /// Queries spend the change budget (`GSL_RATE_ONE_BUDGET=on`): for a
    /// carrier that counts every call of the account against one limit.
    pub one_budget: bool,
    /// How long the first item of a batch waits for others to join
    /// (`GSL_BATCH_WINDOW_MS`; 0 turns batch calls off).
    pub batch_window: Duration,
    /// Deliveries of one item before it is dead-lettered (`GSL_MAX_DELIVER`).
    pub max_deliver: i64,
    /// How long a delivery may go without an ack or progress (`GSL_ACK_WAIT_SECS`).
    pub ack_wait: Duration,
    /// Attempts of one carrier call within a delivery (`GSL_CALL_ATTEMPTS`).
    pub call_attempts: usize,
    /// Largest carrier answer read, in bytes (`GSL_MAX_ANSWER_BYTES`, default
    /// 1 MiB; set per adapter deployment, so per carrier). An answer over it
    /// is a carrier fault: a change's outcome is then unknown and read back.
    pub max_answer: usize,
    /// How long one delivery keeps retrying a report to an unreachable
    /// gateway (`GSL_REPORT_GIVE_UP_SECS`); then the message is
    /// redelivered, and dead-lettered after the last delivery.
    pub report_give_up: Duration,
    /// HTTP timeout of one carrier request (`GSL_CALL_TIMEOUT_MS`).
    pub call_timeout: Duration,
    /// Real time between completion polls (`GSL_POLL_INTERVAL_MS`).
    pub poll_interval: Duration,
    /// Poll once right after the carrier accepts (`GSL_INLINE_POLL`):
    /// changes that complete at once finish without a follow-up round trip.
    /// Never for a carrier whose changes never complete at once
    /// ([`crate::carrier::CarrierApi::completes_at_once`]).
    pub inline_poll: bool,
    /// Bounds of the learned wait before the first read of an accepted
    /// change (`GSL_FIRST_POLL_MIN_MS`; `GSL_FIRST_POLL_MAX_MS`,
    /// default 3600000): see [`crate::completion`].
    pub first_poll_min: Duration,
    pub first_poll_max: Duration,
    /// Cooldown rules switched off by name (`GSL_COOLDOWNS_DISABLED=same,reset`).
    pub cooldowns_disabled: BTreeSet<String>,
    /// The scaled clock (`GSL_CLOCK_START`, `GSL_CLOCK_ANCHOR`, `GSL_TIME_SCALE`).
    pub clock: Clock,
    /// This replica's name in reports and logs (`POD_NAME` or `HOSTNAME`).
    pub instance: String,
    /// Cooldown holds overridden by name (`GSL_COOLDOWN_HOLDS=status=1800`,
    /// seconds): e.g. China Mobile's repeat window, 3 or 30 minutes
    /// (`cmcc.md`, unsure), is the `status` rule.
    pub cooldown_holds: BTreeMap<String, Duration>,
    /// Carrier-specific settings (`GSL_CMCC_*`, `GSL_CT_*`, `GSL_CU_*`,
    /// `GSL_TRINET_*`), read by that carrier's module, which owns their
    /// defaults. Those named in [`CREDENTIAL_SETTINGS`] are kept as
    /// [`Secret`]s.
    pub carrier_settings: CarrierSettings,
    /// Card sync (`GSL_SYNC*`; see [`SyncSettings`]).
    pub sync: SyncSettings,
}

/// Card sync: how this adapter follows its carrier's cards
/// (`docs/carriers.md`, "Card sync"). One adapter deployment serves one
/// carrier, so each is a setting per carrier.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    /// `GSL_SYNC=on|off`.
    pub enabled: bool,
    /// A full sweep of the carrier's cards is spread over this
    /// (`GSL_SYNC_INTERVAL_SECS`, default 24 h).
    pub interval: Duration,
    /// Changed-since passes, where the carrier has one
    /// (`GSL_SYNC_CHANGED_SECS`, default 60: `cu.md` allows such polls at
    /// most once a minute).
    pub changed_every: Duration,
    /// Most of the carrier's budget sync takes while work orders wait for it
    /// (`GSL_SYNC_SHARE`, default 0.05); with none waiting it takes what is
    /// free.
    pub share: f64,
    /// Cards one replica claims from a sweep at a time (`GSL_SYNC_CHUNK`).
    pub chunk: usize,
    /// A usage sweep (carriers that read usage in batches) is spread over
    /// this (`GSL_SYNC_USAGE_INTERVAL_SECS`, default 24 h: the carriers
    /// state usage as of yesterday 24:00).
    pub usage_interval: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            enabled: true,
            interval: Duration::from_secs(24 * 3600),
            changed_every: Duration::from_secs(60),
            share: 0.05,
            chunk: 10,
            usage_interval: Duration::from_secs(24 * 3600),
        }
    }
}

impl SyncSettings {
    /// The defaults with `GSL_SYNC*` overrides read through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<SyncSettings, String> {
        let mut s = SyncSettings {
            enabled: match get("GSL_SYNC").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(o) => return Err(format!("GSL_SYNC {o:?}: expected on or off")),
            },
            ..SyncSettings::default()
        };
        let secs = |k: &str, d: Duration| -> Result<Duration, String> {
            match get(k) {
                None => Ok(d),
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{k} must be a positive number of seconds")),
            }
        };
        s.interval = secs("GSL_SYNC_INTERVAL_SECS", s.interval)?;
        s.changed_every = secs("GSL_SYNC_CHANGED_SECS", s.changed_every)?;
        s.usage_interval = secs("GSL_SYNC_USAGE_INTERVAL_SECS", s.usage_interval)?;
        if let Some(v) = get("GSL_SYNC_SHARE") {
            s.share = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| *x > 0.0 && *x <= 1.0)
                .ok_or("GSL_SYNC_SHARE must be a number above 0 and at most 1")?;
        }
        if let Some(v) = get("GSL_SYNC_CHUNK") {
            s.chunk = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or("GSL_SYNC_CHUNK must be a whole number from 1 to 1000")?;
        }
        Ok(s)
    }
}

/// Carrier settings that are credentials (kept as [`Secret`]s, never
/// printed). A list, not a guess from the name.
pub const CREDENTIAL_SETTINGS: &[&str] = &["GSL_CT_DCP_PASSWORD", "GSL_CT_DCP_KEY"];

/// Carrier settings by name: plain values, and credentials apart.
#[derive(Debug, Clone, Default)]
pub struct CarrierSettings {
    plain: BTreeMap<String, String>,
    credentials: BTreeMap<String, Secret>,
}

impl CarrierSettings {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.plain
            .get(key)
            .map(String::as_str)
            .or_else(|| self.credentials.get(key).map(Secret::expose))
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        if CREDENTIAL_SETTINGS.contains(&key.as_str()) {
            self.credentials.insert(key, Secret::new(value));
        } else {
            self.plain.insert(key, value.into());
        }
    }
}

impl AdapterConfig {
    /// Defaults for a carrier; tests adjust fields.
    pub fn new(
        carrier: Carrier,
        carrier_url: &str,
        nats_url: &str,
        gateway_url: &str,
        adapter_token: &str,
    ) -> AdapterConfig {
        AdapterConfig {
            carrier,
            carrier_url: carrier_url.trim_end_matches('/').to_owned(),
            carrier_user: String::new(),
            carrier_secret: Secret::default(),
            bus: BusConfig::new(nats_url, format!("gsl-adapter-{carrier}")),
            gateway_url: gateway_url.to_owned(),
            adapter_token: Secret::from(adapter_token),
            gateway_ca_cert: None,
            admin_listen: "127.0.0.1:0".into(),
            concurrency: 64,
            rate_change: Rate::per_second(5),
            rate_query: Rate::per_second(5),
            rate_safety: 0.95,
            budget: Budget::Shared,
            one_budget: false,
            batch_window: Duration::from_millis(250),
            max_deliver: gsl_bus::topology::Delivery::default().max_deliver,
            ack_wait: gsl_bus::topology::Delivery::default().ack_wait,
            call_attempts: 4,
            max_answer: crate::http::DEFAULT_MAX_ANSWER_BYTES,
            call_timeout: Duration::from_secs(10),
            report_give_up: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
            inline_poll: true,
            first_poll_min: Duration::ZERO,
            first_poll_max: Duration::from_secs(3600),
            cooldowns_disabled: BTreeSet::new(),
            clock: Clock::real(),
            instance: format!("adapter-{carrier}"),
            cooldown_holds: BTreeMap::new(),
            carrier_settings: CarrierSettings::default(),
            sync: SyncSettings::default(),
        }
    }

    /// The hold of a cooldown rule: the override, or the domain table's.
    pub fn cooldown_hold(&self, rule: &str) -> Option<Duration> {
        if let Some(d) = self.cooldown_holds.get(rule) {
            return Some(*d);
        }
        gsl_domain::cooldown::COOLDOWNS
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| match r.hold {
                gsl_domain::cooldown::Hold::For(d) => d.to_std().ok(),
                gsl_domain::cooldown::Hold::UntilComplete => None,
            })
    }

    /// A carrier setting (`GSL_CMCC_GROUP_ID` ...), if set.
    pub fn carrier_setting(&self, key: &str) -> Option<&str> {
        self.carrier_settings.get(key)
    }

    /// Set a carrier setting (tests; the environment sets them in production).
    pub fn set_carrier_setting(&mut self, key: &str, value: impl Into<String>) {
        self.carrier_settings.insert(key, value);
    }

    pub fn from_env() -> Result<AdapterConfig, String> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let need = |k: &str| get(k).ok_or_else(|| format!("{k} is required"));
        let carrier: Carrier = need("GSL_CARRIER")?
            .parse()
            .map_err(|e| format!("GSL_CARRIER: {e}"))?;
        let mut c = AdapterConfig::new(
            carrier,
            &need("GSL_CARRIER_URL")?,
            gsl_bus::connect::DEFAULT_NATS_URL,
            &need("GSL_GATEWAY_URL")?,
            &need("GSL_ADAPTER_TOKEN")?,
        );
        c.bus = BusConfig::from_lookup(&format!("gsl-adapter-{carrier}"), |k| get(k));
        c.carrier_user = get("GSL_CARRIER_USER").unwrap_or_default();
        c.gateway_ca_cert = get("GSL_GATEWAY_CA_CERT").map(std::path::PathBuf::from);
        c.carrier_secret = Secret::new(get("GSL_CARRIER_SECRET").unwrap_or_default());
        c.admin_listen = get("GSL_ADMIN_LISTEN").unwrap_or_else(|| "0.0.0.0:9091".into());
        let num = |k: &str, d: u64| -> Result<u64, String> {
            get(k)
                .map(|v| v.parse().map_err(|_| format!("{k} must be a whole number")))
                .unwrap_or(Ok(d))
        };
        c.sync = SyncSettings::from_lookup(|k| get(k))?;
        c.concurrency = num("GSL_CONCURRENCY", c.concurrency as u64)?.max(1) as usize;
        if let Some(r) = get("GSL_RATE_CHANGE") {
            c.rate_change = Rate::parse(&r)?;
        }
        if let Some(r) = get("GSL_RATE_QUERY") {
            c.rate_query = Rate::parse(&r)?;
        }
        if get("GSL_RATE_LIST").is_some() {
            return Err("GSL_RATE_LIST is no longer read: every call, query or change, spends GSL_RATE_QUERY or GSL_RATE_CHANGE (the contracts count every call); unset it".into());
        }
        if let Some(s) = get("GSL_RATE_SAFETY") {
            c.rate_safety = s
                .parse()
                .map_err(|_| "GSL_RATE_SAFETY must be a number".to_string())?;
            if !(0.1..=1.0).contains(&c.rate_safety) {
                return Err("GSL_RATE_SAFETY must be between 0.1 and 1".into());
            }
        }
        c.budget = match get("GSL_RATE_BUDGET").as_deref() {
            None | Some("shared") => Budget::Shared,
            Some("local") => Budget::Local,
            Some(o) => return Err(format!("GSL_RATE_BUDGET {o:?}: expected shared or local")),
        };
        c.one_budget = match get("GSL_RATE_ONE_BUDGET").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(o) => return Err(format!("GSL_RATE_ONE_BUDGET {o:?}: expected on or off")),
        };
        c.batch_window = Duration::from_millis(num(
            "GSL_BATCH_WINDOW_MS",
            c.batch_window.as_millis() as u64,
        )?);
        c.max_deliver = num("GSL_MAX_DELIVER", c.max_deliver as u64)?.max(1) as i64;
        c.ack_wait = Duration::from_secs(num("GSL_ACK_WAIT_SECS", c.ack_wait.as_secs())?.max(2));
        c.call_attempts = num("GSL_CALL_ATTEMPTS", c.call_attempts as u64)?.max(1) as usize;
        c.max_answer = num("GSL_MAX_ANSWER_BYTES", c.max_answer as u64)?.max(1) as usize;
        c.call_timeout = Duration::from_millis(num(
            "GSL_CALL_TIMEOUT_MS",
            c.call_timeout.as_millis() as u64,
        )?);
        c.report_give_up =
            Duration::from_secs(num("GSL_REPORT_GIVE_UP_SECS", c.report_give_up.as_secs())?);
        c.poll_interval = Duration::from_millis(num(
            "GSL_POLL_INTERVAL_MS",
            c.poll_interval.as_millis() as u64,
        )?);
        c.inline_poll = get("GSL_INLINE_POLL").as_deref() != Some("off");
        c.first_poll_min = Duration::from_millis(num(
            "GSL_FIRST_POLL_MIN_MS",
            c.first_poll_min.as_millis() as u64,
        )?);
        c.first_poll_max = Duration::from_millis(num(
            "GSL_FIRST_POLL_MAX_MS",
            c.first_poll_max.as_millis() as u64,
        )?);
        c.cooldowns_disabled = get("GSL_COOLDOWNS_DISABLED")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        c.clock = Clock::from_settings(
            get("GSL_CLOCK_START").as_deref(),
            get("GSL_CLOCK_ANCHOR").as_deref(),
            get("GSL_TIME_SCALE").as_deref(),
        )
        .map_err(|e| e.to_string())?;
        if let Some(h) = get("GSL_COOLDOWN_HOLDS") {
            for pair in h.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, secs) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("GSL_COOLDOWN_HOLDS: {pair:?} is not rule=seconds"))?;
                let secs: u64 = secs
                    .trim()
                    .parse()
                    .map_err(|_| format!("GSL_COOLDOWN_HOLDS: {pair:?} is not rule=seconds"))?;
                c.cooldown_holds
                    .insert(name.trim().to_owned(), Duration::from_secs(secs));
            }
        }
        let prefixes: Vec<String> = Carrier::ALL
            .iter()
            .map(|c| format!("GSL_{}_", c.as_str().to_uppercase()))
            .collect();
        for (k, v) in std::env::vars()
            .filter(|(k, v)| !v.is_empty() && prefixes.iter().any(|p| k.starts_with(p)))
        {
            c.carrier_settings.insert(k, v);
        }
        c.instance = get("POD_NAME")
            .or_else(|| get("HOSTNAME"))
            .unwrap_or_else(|| format!("adapter-{carrier}"));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_every_credential() {
        let mut c = AdapterConfig::new(
            Carrier::Ct,
            "http://ct",
            "nats://n",
            "http://gw",
            "adapter-tok-1",
        );
        c.carrier_secret = "5gcmp-secret-1".into();
        for (k, v) in [
            ("GSL_CT_DCP_PASSWORD", "dcp-pw-1"),
            ("GSL_CT_DCP_KEY", "k9X2m7Q4p"),
            ("GSL_CT_DCP_USER", "dcp-user"),
        ] {
            c.set_carrier_setting(k, v);
        }
        let d = format!("{c:?}");
        for secret in ["adapter-tok-1", "5gcmp-secret-1", "dcp-pw-1", "k9X2m7Q4p"] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
        assert!(d.contains("dcp-user"), "non-secrets stay visible: {d}");
    }

    #[test]
    fn rates() {
        assert_eq!(Rate::parse("50").unwrap(), Rate::per_second(50));
        assert_eq!(Rate::parse("1/s").unwrap(), Rate::per_second(1));
        assert_eq!(
            Rate::parse("300/min").unwrap(),
            Rate {
                limit: 300,
                window: Duration::from_secs(60)
            }
        );
        assert_eq!(Rate::parse("0").unwrap().limit, 0);
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("5/h").is_err());
    }
}
