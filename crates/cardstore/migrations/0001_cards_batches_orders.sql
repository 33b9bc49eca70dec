-- Cards, purchase batches and the order index (docs/architecture.md, "The card store").
-- Applied by `gsl-gateway migrate` (never at service start in production).

-- One row per card. Ownership is the primary key: an import claims a card
-- with INSERT .. ON CONFLICT (id) DO UPDATE .. WHERE (the current owner), so
-- two tenants can never both hold one card.
CREATE TABLE cards (
    id              text PRIMARY KEY,          -- ICCID (19-20 digits) or container id
    tenant          text NOT NULL,
    carrier         smallint NOT NULL,         -- gsl.v1.Carrier
    sim_status      smallint NOT NULL,         -- 10, 11, 13, 14, 20, 30
    stop_reason     smallint NOT NULL DEFAULT -1,
    pooled          boolean NOT NULL DEFAULT false,
    real_named      boolean NOT NULL DEFAULT false,
    trinet_version  smallint NOT NULL DEFAULT 0,
    imei            text NOT NULL DEFAULT '',
    speed_kbps      integer NOT NULL DEFAULT 0,
    threshold_mb    bigint NOT NULL DEFAULT -1,
    batch_no        text NOT NULL DEFAULT '',
    active_profile  smallint NOT NULL DEFAULT 0,
    msisdn          text NOT NULL DEFAULT '',
    imsi            text NOT NULL DEFAULT '',
    access_number   text NOT NULL DEFAULT '',
    -- The newest change applied: an outcome older than this changes nothing.
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- A tenant's cards in id order (card listings page through a fleet).
CREATE INDEX cards_tenant_id ON cards (tenant, id);

-- Purchase batches (directional config): the record is the protobuf
-- gsl.v1.PurchaseBatch; a change is read-modify-write under a row lock.
CREATE TABLE batches (
    batch_no    text PRIMARY KEY,
    tenant      text NOT NULL,
    record      bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_tenant ON batches (tenant);

-- What `List` filters on; the order record itself stays in NATS KV
-- (gsl_workorders). Written by every gateway replica as it follows the
-- bucket: the KV revision decides, so replays and replicas agree.
CREATE TABLE orders (
    id           bigint PRIMARY KEY,
    tenant       text NOT NULL,
    kind         integer NOT NULL,
    carriers     integer[] NOT NULL,
    status       integer NOT NULL,
    created_at   timestamptz NOT NULL,
    fanout_done  boolean NOT NULL,
    revision     bigint NOT NULL
);
CREATE INDEX orders_tenant_id ON orders (tenant, id DESC);
CREATE INDEX orders_tenant_status ON orders (tenant, status);
CREATE INDEX orders_fanout ON orders (created_at) WHERE NOT fanout_done;

-- How far the order index has followed gsl_workorders: every KV revision
-- up to this one is applied (by some replica).
CREATE TABLE order_index_position (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision  bigint NOT NULL
);
INSERT INTO order_index_position VALUES (true, 0);
