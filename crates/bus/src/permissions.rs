//! Each service's NATS permissions, as data: what its user may publish and
//! subscribe to, so that one service's login can do only that service's job.
//!
//! The JetStream API subjects follow the NATS "JetStream wire API reference"
//! and ADR-32: a service may look streams up (`STREAM.INFO`), read the
//! buckets it uses by direct get, write only its own keys, fetch from and
//! ack its own durable consumers, and create (and delete) ephemeral
//! consumers only on the streams it watches. Nobody but the setup step
//! (`gsl-gateway migrate`, [`Role::Migrate`]) may create, update, purge or
//! delete a stream or consumer. Every user reads replies only under its own
//! inbox prefix ([`crate::connect::inbox_prefix_for`]); an intake client's
//! inbox is `_INBOX_INTAKE.<tenant>`, the one place the gateway may send an
//! intake answer to.
//!
//! [`render_user`] writes a user entry of a `nats-server` configuration;
//! `gsl-gateway nats-user <role> <user> <password>` prints it for scripts.

use crate::names::*;
use gsl_domain::Carrier;

/// Whose permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Adapter(Carrier),
    /// A service that publishes work orders for one tenant.
    Intake(String),
    /// The setup step: administers JetStream.
    Migrate,
    /// `gsl-push`: reads work-order events, delivers pushes, keeps the
    /// push addresses.
    Push,
}

/// The quota ledger keys the gateway may read: China Telecom's rebinds.
pub const QUOTA_READ_BY_GATEWAY: &str = "ct.rebind.";

/// Where intake clients receive the gateway's answers.
pub const INTAKE_INBOX_ROOT: &str = "_INBOX_INTAKE";

/// An intake client's inbox prefix.
pub fn intake_inbox(tenant: &str) -> String {
    format!("{INTAKE_INBOX_ROOT}.{tenant}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

fn kv_write(bucket: &str, prefix: &str) -> String {
    format!("$KV.{bucket}.{prefix}>")
}

/// Direct get of a bucket's keys (both request forms), optionally under a
/// key prefix.
fn kv_read(bucket: &str, prefix: &str, out: &mut Vec<String>) {
    out.push(format!(
        "$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{prefix}>"
    ));
    if prefix.is_empty() {
        out.push(format!("$JS.API.DIRECT.GET.KV_{bucket}"));
    }
}

/// Ephemeral consumers (watches, key listings, event reads) on a stream.
fn ephemeral(stream: &str, out: &mut Vec<String>) {
    for verb in ["CREATE", "DELETE", "INFO", "MSG.NEXT"] {
        out.push(format!("$JS.API.CONSUMER.{verb}.{stream}"));
        out.push(format!("$JS.API.CONSUMER.{verb}.{stream}.>"));
    }
    out.push(format!("$JS.FC.{stream}.>"));
    out.push(format!("$JS.ACK.{stream}.>"));
}

/// Fetch from and ack a durable consumer.
fn durable(stream: &str, consumer: &str, out: &mut Vec<String>) {
    out.push(format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"));
    out.push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"));
    out.push(format!("$JS.ACK.{stream}.{consumer}.>"));
}

/// The permissions of a role whose own inbox prefix is `inbox`.
pub fn for_role(role: &Role, inbox: &str) -> Permissions {
    let mut p = vec!["$JS.API.INFO".to_string(), "$JS.API.STREAM.INFO.*".into()];
    let subscribe = vec![format!("{inbox}.>")];
    match role {
        Role::Migrate => {
            p.push("$JS.API.>".into());
        }
        Role::Gateway => {
            p.extend([
                "gsl.work.>".to_string(),
                "gsl.evt.>".into(),
                "gsl.sync.*.refresh".into(),
                // A tenant's PushAddresses calls, relayed to gsl-push.
                PUSH_API_SUBJECT.into(),
                dlq_subject("intake"),
                // Intake answers: only to intake clients' inboxes (the
                // gateway checks the tenant part itself).
                format!("{INTAKE_INBOX_ROOT}.>"),
            ]);
            for b in [
                KV_WORKORDERS,
                KV_IDEMPOTENCY,
                KV_RESULTS,
                KV_ACTIVE,
                KV_BACKOFFICE,
            ] {
                p.push(kv_write(b, ""));
                kv_read(b, "", &mut p);
                ephemeral(&format!("KV_{b}"), &mut p);
            }
            // Rebinds left this month (GetCard): China Telecom's rebind
            // ledger, read only; no other quota key.
            kv_read(KV_QUOTA, QUOTA_READ_BY_GATEWAY, &mut p);
            ephemeral(STREAM_EVENTS, &mut p);
            durable(STREAM_INTAKE, INTAKE_CONSUMER, &mut p);
        }
        Role::Adapter(c) => {
            let c = c.as_str();
            p.extend([follow_subject_str(c), dlq_subject(c)]);
            for (bucket, prefix) in [
                (KV_ITEMS, format!("{c}.")),
                (KV_GUARDS, format!("{c}.")),
                (KV_QUOTA, format!("{c}.")),
                (KV_RATE, format!("rate.{c}.")),
                (KV_BACKOFFICE, format!("{c}.")),
                (KV_SYNC, format!("{c}.")),
            ] {
                p.push(kv_write(bucket, &prefix));
                kv_read(bucket, &prefix, &mut p);
            }
            // No card registry: work items carry the card facts.
            durable(STREAM_WORK, &format!("adapter-{c}"), &mut p);
            durable(STREAM_FOLLOW, &format!("follow-{c}"), &mut p);
            return Permissions {
                publish: p,
                subscribe: vec![format!("{inbox}.>"), sync_refresh_subject(c)],
            };
        }
        Role::Push => {
            p.extend([
                "gsl.push.deliver.>".to_string(),
                "gsl.push.notice.>".into(),
                // Answers to the gateway's relayed calls, and the one call
                // of its own that checks the API is routed to it at start.
                format!("{}.>", inbox_of(&Role::Gateway)),
                PUSH_API_SUBJECT.into(),
                format!("{inbox}.>"),
            ]);
            p.push(kv_write(KV_PUSH, ""));
            kv_read(KV_PUSH, "", &mut p);
            ephemeral(&format!("KV_{KV_PUSH}"), &mut p);
            // Failed deliveries are read back from the notices.
            ephemeral(STREAM_PUSH_NOTICES, &mut p);
            durable(STREAM_EVENTS, PUSH_FANOUT_CONSUMER, &mut p);
            durable(STREAM_PUSH, PUSH_DELIVER_CONSUMER, &mut p);
            return Permissions {
                publish: p,
                subscribe: vec![format!("{inbox}.>"), PUSH_API_SUBJECT.into()],
            };
        }
        Role::Intake(tenant) => {
            p = vec![
                format!("gsl.intake.{tenant}"),
                format!("$JS.API.STREAM.INFO.{STREAM_INTAKE}"),
            ];
            return Permissions {
                publish: p,
                // Its answers, and its own tenant's events as they are
                // published (the progress `docs/intake.md` promises); no
                // other tenant's.
                subscribe: vec![
                    format!("{}.>", intake_inbox(tenant)),
                    crate::names::tenant_events_filter(tenant),
                ],
            };
        }
    }
    Permissions {
        publish: p,
        subscribe,
    }
}

fn follow_subject_str(c: &str) -> String {
    format!("gsl.follow.{c}")
}

/// One `users` entry of a `nats-server` configuration.
pub fn render_user(user: &str, password: &str, p: &Permissions) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{}\"", s.replace('"', "")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{ user: \"{user}\", password: \"{password}\", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}",
        list(&p.publish),
        list(&p.subscribe)
    )
}

/// One `users` entry of the NATS Helm chart's `config.merge.authorization`
/// (`deploy/k8s/nats-values.yaml`), indented for that file; `password` is
/// usually a `$VARIABLE` the chart fills from a secret.
pub fn render_user_yaml(user: &str, password: &str, p: &Permissions) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "        - user: {user}\n          password: {password}\n          permissions:\n            publish: {{allow: [{}]}}\n            subscribe: {{allow: [{}]}}\n",
        list(&p.publish),
        list(&p.subscribe)
    )
}

/// The inbox prefix a role's service uses.
pub fn inbox_of(role: &Role) -> String {
    match role {
        Role::Intake(t) => intake_inbox(t),
        Role::Gateway => crate::connect::inbox_prefix_for("gsl-gateway"),
        Role::Adapter(c) => crate::connect::inbox_prefix_for(&format!("gsl-adapter-{c}")),
        Role::Migrate => crate::connect::inbox_prefix_for("gsl-migrate"),
        Role::Push => crate::connect::inbox_prefix_for("gsl-push"),
    }
}

/// A role by name: `gateway`, `push`, `adapter-<carrier>`, `intake-<tenant>`, `migrate`.
pub fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "gateway" => Ok(Role::Gateway),
        "push" => Ok(Role::Push),
        "migrate" => Ok(Role::Migrate),
        _ => {
            if let Some(c) = s.strip_prefix("adapter-") {
                return c
                    .parse()
                    .map(Role::Adapter)
                    .map_err(|e| format!("{s}: {e}"));
            }
            if let Some(t) = s.strip_prefix("intake-")
                && valid_tenant(t)
            {
                return Ok(Role::Intake(t.to_owned()));
            }
            Err(format!(
                "role {s:?}: expected gateway, push, adapter-<carrier>, intake-<tenant> or migrate"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_but_migrate_administers_jetstream() {
        for role in [
            Role::Gateway,
            Role::Adapter(Carrier::Ct),
            Role::Intake("acme".into()),
        ] {
            let p = for_role(&role, "_INBOX_x");
            for forbidden in ["$JS.API.>", "$JS.API.STREAM.>", "_INBOX.>", "$KV.>"] {
                assert!(
                    !p.publish.iter().any(|s| s == forbidden),
                    "{role:?} {forbidden}"
                );
            }
            assert!(
                !p.publish.iter().any(|s| s.contains("STREAM.DELETE")
                    || s.contains("STREAM.PURGE")
                    || s.contains("STREAM.UPDATE")
                    || s.contains("STREAM.CREATE")),
                "{role:?}"
            );
            assert!(
                p.subscribe.iter().all(|s| !s.starts_with("_INBOX.")),
                "{role:?}"
            );
        }
        assert!(
            for_role(&Role::Migrate, "_INBOX_m")
                .publish
                .contains(&"$JS.API.>".into())
        );
    }

    #[test]
    fn an_adapter_writes_only_its_carriers_keys_where_they_are_prefixed() {
        let p = for_role(&Role::Adapter(Carrier::Ct), "_INBOX_a");
        assert!(p.publish.contains(&"$KV.gsl_rate.rate.ct.>".into()));
        assert!(p.publish.contains(&"$KV.gsl_items.ct.>".into()));
        assert!(p.publish.contains(&"$KV.gsl_guards.ct.>".into()));
        assert!(p.publish.contains(&"$KV.gsl_backoffice.ct.>".into()));
        assert!(
            !p.publish
                .iter()
                .any(|s| s.contains("gsl_cards") || s.contains("gsl_batches")),
            "no access to the legacy card registry: work items carry the card facts"
        );
        assert!(!p.publish.iter().any(|s| s.contains("cmcc")));
        assert!(!p.publish.iter().any(|s| s.starts_with("gsl.intake")));
    }

    #[test]
    fn no_service_reaches_the_legacy_card_registry() {
        for role in [Role::Gateway, Role::Adapter(Carrier::Cmcc)] {
            let p = for_role(&role, "_INBOX_x");
            assert!(
                !p.publish
                    .iter()
                    .any(|s| s.contains("gsl_cards") || s.contains("gsl_batches")),
                "{role:?}: {:?}",
                p.publish
            );
        }
    }

    #[test]
    fn roles_by_name() {
        assert_eq!(
            parse_role("adapter-cu").unwrap(),
            Role::Adapter(Carrier::Cu)
        );
        assert_eq!(
            parse_role("intake-acme").unwrap(),
            Role::Intake("acme".into())
        );
        assert!(parse_role("intake-A.B").is_err());
        assert!(parse_role("root").is_err());
    }
}
