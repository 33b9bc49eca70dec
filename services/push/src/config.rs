//! Settings: one `Default` (production), the environment overrides it.

use crate::netguard::NetGuard;
use gsl_bus::BusConfig;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PushConfig {
    pub bus: BusConfig,
    /// Health and metrics (`GSL_ADMIN_LISTEN`, `0.0.0.0:9090`).
    pub admin_listen: String,
    /// The waits between attempts (`GSL_PUSH_RETRY_SCHEDULE`, seconds or
    /// `5s`, `5m`, `2h` comma-separated): Svix's, 5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h (about 27 h; eight attempts). Each wait varies by
    /// up to a fifth (jitter).
    pub schedule: Vec<Duration>,
    /// One attempt's limit, connection to answer (`GSL_PUSH_TIMEOUT_SECS`, 15).
    pub timeout: Duration,
    /// Bytes of a receiver's answer read (`GSL_PUSH_ANSWER_BYTES`, 4096).
    pub answer_bytes: usize,
    /// The failed attempt that sends a "failing" notice (4).
    pub failing_at: u32,
    /// An address with no success for this long is disabled
    /// (`GSL_PUSH_DISABLE_AFTER_SECS`, 5 days).
    pub disable_after: Duration,
    /// Per-address defaults: deliveries per second and at once (50, 10).
    pub default_rate: u32,
    pub default_concurrency: u32,
    /// How long a rotated-out secret still signs (24 h).
    pub rotation_overlap: Duration,
    /// Ranges pushes may reach although private (`GSL_PUSH_ALLOW_NETS`).
    pub guard: NetGuard,
    /// `http://` addresses (`GSL_PUSH_ALLOW_HTTP=on`; development only).
    pub allow_http: bool,
    /// Addresses per tenant (20).
    pub max_addresses: usize,
    /// Deliveries attempted at once in this process (`GSL_PUSH_IN_FLIGHT`, 512).
    pub in_flight: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            bus: BusConfig::new(gsl_bus::connect::DEFAULT_NATS_URL, "gsl-push"),
            admin_listen: "0.0.0.0:9090".into(),
            schedule: [5, 300, 1800, 7200, 18000, 36000, 36000]
                .map(Duration::from_secs)
                .to_vec(),
            timeout: Duration::from_secs(15),
            answer_bytes: 4096,
            failing_at: 4,
            disable_after: Duration::from_secs(5 * 86_400),
            default_rate: 50,
            default_concurrency: 10,
            rotation_overlap: Duration::from_secs(86_400),
            guard: NetGuard::default(),
            allow_http: false,
            max_addresses: 20,
            in_flight: 512,
        }
    }
}

/// `5`, `5s`, `5m`, `2h`: a duration.
pub fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = n.parse().ok().filter(|n: &f64| *n >= 0.0)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

impl PushConfig {
    /// For tests and development: loopback allowed, quick retries.
    pub fn local(nats_url: &str) -> PushConfig {
        PushConfig {
            bus: BusConfig::new(nats_url, "gsl-push"),
            admin_listen: "127.0.0.1:0".into(),
            guard: NetGuard::parse("127.0.0.0/8,::1/128").expect("valid ranges"),
            schedule: [1, 1, 2].map(Duration::from_secs).to_vec(),
            ..Default::default()
        }
    }

    pub fn from_env() -> Result<PushConfig, String> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<PushConfig, String> {
        let d = PushConfig::default();
        let secs = |k: &str, v: Duration| -> Result<Duration, String> {
            match get(k) {
                Some(s) => duration(&s)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("{k} {s:?}: a duration (seconds, or 5s, 5m, 2h)")),
                None => Ok(v),
            }
        };
        let num = |k: &str, v: usize| -> Result<usize, String> {
            match get(k) {
                Some(s) => s
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{k} {s:?}: a positive number")),
                None => Ok(v),
            }
        };
        let schedule = match get("GSL_PUSH_RETRY_SCHEDULE") {
            Some(s) => s
                .split(',')
                .map(|p| duration(p).ok_or_else(|| format!("GSL_PUSH_RETRY_SCHEDULE: {p:?}")))
                .collect::<Result<Vec<_>, _>>()?,
            None => d.schedule.clone(),
        };
        Ok(PushConfig {
            bus: BusConfig::from_lookup("gsl-push", &get),
            admin_listen: get("GSL_ADMIN_LISTEN").unwrap_or(d.admin_listen),
            schedule,
            timeout: secs("GSL_PUSH_TIMEOUT_SECS", d.timeout)?,
            answer_bytes: num("GSL_PUSH_ANSWER_BYTES", d.answer_bytes)?,
            failing_at: d.failing_at,
            disable_after: secs("GSL_PUSH_DISABLE_AFTER_SECS", d.disable_after)?,
            default_rate: d.default_rate,
            default_concurrency: d.default_concurrency,
            rotation_overlap: d.rotation_overlap,
            guard: NetGuard::parse(&get("GSL_PUSH_ALLOW_NETS").unwrap_or_default())?,
            allow_http: match get("GSL_PUSH_ALLOW_HTTP").as_deref() {
                None | Some("off") => false,
                Some("on") => true,
                Some(o) => return Err(format!("GSL_PUSH_ALLOW_HTTP {o:?}: on or off")),
            },
            max_addresses: d.max_addresses,
            in_flight: num("GSL_PUSH_IN_FLIGHT", d.in_flight)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/operations.md lists the defaults this `Default` has.
    #[test]
    fn the_documented_defaults_are_the_codes() {
        let doc = include_str!("../../../docs/operations.md");
        let row = |k: &str| {
            doc.lines()
                .find(|l| l.starts_with(&format!("| `{k}` |")))
                .and_then(|l| l.split('|').nth(2))
                .map(|d| d.trim().trim_matches('`').to_owned())
                .unwrap_or_else(|| panic!("{k} is not documented"))
        };
        let d = PushConfig::default();
        let schedule: Vec<Duration> = row("GSL_PUSH_RETRY_SCHEDULE")
            .split(',')
            .map(|p| duration(p).unwrap())
            .collect();
        assert_eq!(schedule, d.schedule);
        assert_eq!(
            row("GSL_PUSH_TIMEOUT_SECS"),
            d.timeout.as_secs().to_string()
        );
        assert_eq!(row("GSL_PUSH_ANSWER_BYTES"), d.answer_bytes.to_string());
        assert_eq!(
            row("GSL_PUSH_DISABLE_AFTER_SECS"),
            d.disable_after.as_secs().to_string()
        );
        assert_eq!(row("GSL_PUSH_IN_FLIGHT"), d.in_flight.to_string());
        assert_eq!(row("GSL_PUSH_ALLOW_HTTP"), "off");
        assert!(!d.allow_http && d.guard.allow.is_empty());
    }

    #[test]
    fn the_environment_overrides_the_defaults() {
        let c = PushConfig::from_lookup(|_| None).unwrap();
        assert_eq!(c.schedule.iter().map(|d| d.as_secs()).sum::<u64>(), 99_305);
        let c = PushConfig::from_lookup(|k| match k {
            "GSL_PUSH_RETRY_SCHEDULE" => Some("1s, 2m,3".into()),
            "GSL_PUSH_ALLOW_NETS" => Some("127.0.0.0/8".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c.schedule,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(120),
                Duration::from_secs(3)
            ]
        );
        assert!(c.guard.permits("127.0.0.1".parse().unwrap()));
        for (k, v) in [
            ("GSL_PUSH_RETRY_SCHEDULE", "1x"),
            ("GSL_PUSH_ALLOW_NETS", "nope"),
            ("GSL_PUSH_ALLOW_HTTP", "yes"),
        ] {
            assert!(
                PushConfig::from_lookup(|q| (q == k).then(|| v.to_string())).is_err(),
                "{k}={v}"
            );
        }
    }
}
