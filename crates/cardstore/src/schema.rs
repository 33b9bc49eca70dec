//! The schema: numbered migrations kept in `migrations/`, applied in order
//! by `gsl-gateway migrate` (a Kubernetes Job with the schema owner's role,
//! or `make up`), each in its own transaction under an advisory lock, so
//! two migrate runs never interleave and a failed one leaves nothing half
//! done. Services never change the schema in production: at start they
//! only check that it is the version they were built for
//! ([`CardStore::check_schema`]). Tests and local development
//! (`GSL_TOPOLOGY=ensure`) migrate at start.

use crate::{CardStore, StoreError};

/// Every migration, oldest first: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "cards, batches, orders",
        include_str!("../migrations/0001_cards_batches_orders.sql"),
    ),
    (
        2,
        "the card list",
        include_str!("../migrations/0002_card_list.sql"),
    ),
    (
        3,
        "card sync",
        include_str!("../migrations/0003_card_sync.sql"),
    ),
    (
        4,
        "daily usage",
        include_str!("../migrations/0004_usage_daily.sql"),
    ),
];

/// The version this build needs.
pub fn latest() -> i32 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// The tables the service role reads and writes (every table but
/// `gsl_schema`, which it only reads).
pub const SERVICE_TABLES: &str = "cards, batches, orders, order_index_position, card_membership, card_anchors, card_anchor_sets, card_usage_days";

/// Any fixed number: the lock that keeps two migrate runs apart.
const MIGRATE_LOCK: i64 = 0x0067_736c_5f6d_6967;

impl CardStore {
    /// Apply every migration not applied yet; the versions applied now.
    /// With `grant_to`, the service role gets read and write on every
    /// table, and CONNECT and TEMPORARY on the database (imports stage rows
    /// in a temporary table): no schema changes, no other objects.
    pub async fn migrate(&self, grant_to: Option<&str>) -> Result<Vec<i32>, StoreError> {
        let mut c = self.client().await?;
        // Under the lock too: two `CREATE TABLE IF NOT EXISTS` at once
        // can both try to create it.
        c.batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATE_LOCK});
             CREATE TABLE IF NOT EXISTS gsl_schema (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
             COMMIT"
        ))
        .await
        .map_err(StoreError::query("create gsl_schema"))?;
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
                .await
                .map_err(StoreError::query("migration lock"))?;
            let done = tx
                .query_opt("SELECT 1 FROM gsl_schema WHERE version = $1", &[version])
                .await
                .map_err(StoreError::query("read gsl_schema"))?
                .is_some();
            if !done {
                tx.batch_execute(sql)
                    .await
                    .map_err(StoreError::query("migration"))?;
                tx.execute(
                    "INSERT INTO gsl_schema (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(StoreError::query("record migration"))?;
                applied.push(*version);
            }
            tx.commit().await.map_err(StoreError::query("commit"))?;
        }
        if let Some(role) = grant_to {
            // A role name is an identifier: quoted, never spliced raw.
            let quoted = format!("\"{}\"", role.replace('"', "\"\""));
            // Imports stage rows in a temporary table: the role needs
            // TEMPORARY on the database (and CONNECT), nothing more.
            let db: String = c
                .query_one("SELECT current_database()", &[])
                .await
                .map_err(StoreError::query("current database"))?
                .get(0);
            let db = format!("\"{}\"", db.replace('"', "\"\""));
            c.batch_execute(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {SERVICE_TABLES} TO {quoted};
                 GRANT SELECT ON gsl_schema TO {quoted};
                 GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {quoted}"
            ))
            .await
            .map_err(StoreError::query("grant"))?;
        }
        Ok(applied)
    }

    /// The schema version in the database (0: never migrated).
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        let c = self.client().await?;
        let exists = c
            .query_one("SELECT to_regclass('gsl_schema') IS NOT NULL", &[])
            .await
            .map_err(StoreError::query("schema version"))?
            .get::<_, bool>(0);
        if !exists {
            return Ok(0);
        }
        let v: Option<i32> = c
            .query_one("SELECT max(version) FROM gsl_schema", &[])
            .await
            .map_err(StoreError::query("schema version"))?
            .get(0);
        Ok(v.unwrap_or(0))
    }

    /// Refuse to serve on a schema this build was not made for.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let found = self.schema_version().await?;
        if found != latest() {
            return Err(StoreError::Schema {
                found,
                needed: latest(),
            });
        }
        Ok(())
    }
}
