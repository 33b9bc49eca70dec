//! The one-shot setup commands of `gsl-gateway`:
//!
//! * `gsl-gateway migrate`: create or update every stream, bucket and
//!   durable consumer (with `GSL_MAX_DELIVER` / `GSL_ACK_WAIT_SECS`, so a
//!   changed setting reaches existing consumers), then exit. Run it (as a
//!   Kubernetes Job, or from `make up`) with a NATS user that may administer
//!   JetStream; the services then run with `GSL_TOPOLOGY=bind` and users
//!   that may not.
//! * The card store's part of `migrate` ([`migrate_store`]): the schema
//!   (`gsl_cardstore::schema`), read and write on its tables for the
//!   service role (`GSL_DATABASE_APP_ROLE`), and the copy of a NATS KV
//!   registry (`upgrade`). Run with the schema owner's URL.
//! * `gsl-gateway nats-user <role> <user> <password> [--yaml]`: print that
//!   role's `nats-server` user entry (`gsl_bus::permissions`), for scripts
//!   that write the server configuration (`--yaml`: for the Helm values).

use gsl_bus::topology::{self, Delivery, Topology};
use gsl_bus::{BusConfig, BusError};

/// Create or update the whole topology.
pub async fn migrate(bus: &BusConfig, delivery: Delivery) -> Result<(), BusError> {
    let (_client, js) = gsl_bus::connect(bus).await?;
    let limits =
        topology::StoreLimits::from_lookup(|k| std::env::var(k).ok()).map_err(|reason| {
            BusError::Topology {
                what: "limits".into(),
                reason,
            }
        })?;
    let b = topology::ensure(
        &js,
        &Topology {
            replicas: bus.replicas,
            limits,
            ..Default::default()
        },
    )
    .await?;
    topology::ensure_consumers(&js, delivery).await?;
    let moved = topology::migrate_keys(&js, &b).await?;
    if moved > 0 {
        println!("moved {moved} execution-record and guard keys under their carrier");
    }
    Ok(())
}

/// The card store's part of `migrate`; what it did, as one line.
pub async fn migrate_store(
    bus: &BusConfig,
    url: &gsl_secret::Secret,
    store: &gsl_cardstore::StoreConfig,
    grant_to: Option<&str>,
) -> Result<String, String> {
    let store =
        gsl_cardstore::CardStore::connect(url.expose(), store).map_err(|e| e.to_string())?;
    let applied = store.migrate(grant_to).await.map_err(|e| e.to_string())?;
    let (_client, js) = gsl_bus::connect(bus).await.map_err(|e| e.to_string())?;
    let c = crate::upgrade::copy_kv_registry(&js, &store)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "card store at schema {} (applied now: {applied:?}); from the KV registry: {} cards seen, {} written, {} present, {} batches seen, {} written, {} unreadable",
        gsl_cardstore::schema::latest(),
        c.cards_seen,
        c.cards_written,
        c.cards_present,
        c.batches_seen,
        c.batches_written,
        c.unreadable
    ))
}

/// Delivery settings from the environment (the adapters' own defaults).
pub fn delivery_from_env() -> Result<Delivery, String> {
    let mut d = Delivery::default();
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(v) = get("GSL_MAX_DELIVER") {
        d.max_deliver = v
            .parse::<i64>()
            .map_err(|_| "GSL_MAX_DELIVER must be a whole number".to_string())?
            .max(1);
    }
    if let Some(v) = get("GSL_ACK_WAIT_SECS") {
        d.ack_wait = std::time::Duration::from_secs(
            v.parse::<u64>()
                .map_err(|_| "GSL_ACK_WAIT_SECS must be a whole number".to_string())?
                .max(2),
        );
    }
    Ok(d)
}

/// The `nats-server` user entry of a role (`yaml`: for the NATS Helm chart).
pub fn nats_user(role: &str, user: &str, password: &str, yaml: bool) -> Result<String, String> {
    use gsl_bus::permissions as p;
    let role = p::parse_role(role)?;
    let perms = p::for_role(&role, &p::inbox_of(&role));
    Ok(if yaml {
        p::render_user_yaml(user, password, &perms)
    } else {
        p::render_user(user, password, &perms)
    })
}
