-- The reference card list (docs/architecture.md, "The card list"): the
-- fields the list shows, filters and sorts on, where each value came from,
-- and the anchors that let a deep page skip the rows before it.

-- Card keys compare byte by byte, as the gateway sorts them (lookups read
-- sorted key ranges, cursors carry a key): never by the database's locale.
ALTER TABLE cards ALTER COLUMN id SET DATA TYPE text COLLATE "C";

ALTER TABLE cards
    ADD COLUMN sim_type      smallint NOT NULL DEFAULT 3,   -- 1 vSIM, 2 eSIM, 3 physical
    ADD COLUMN keep_number   boolean  NOT NULL DEFAULT false, -- stopped to keep its number
    ADD COLUMN cut_net       boolean,                       -- cut off on request (NULL: not reported)
    ADD COLUMN act_date      timestamptz,                   -- NULL: not reported
    ADD COLUMN expire_time   timestamptz,
    ADD COLUMN plan_id       text NOT NULL DEFAULT '',
    ADD COLUMN plan_name     text NOT NULL DEFAULT '',
    ADD COLUMN allowance_mb  double precision,              -- the plan's data, from the import
    ADD COLUMN flow_used_mb  double precision,              -- from the carrier (card sync)
    ADD COLUMN flow_used_at  timestamptz,                   -- its "as of" time
    ADD COLUMN flow_left_mb  double precision GENERATED ALWAYS AS (allowance_mb - flow_used_mb) STORED,
    ADD COLUMN attr1 text NOT NULL DEFAULT '',
    ADD COLUMN attr2 text NOT NULL DEFAULT '',
    ADD COLUMN attr3 text NOT NULL DEFAULT '',
    ADD COLUMN attr4 text NOT NULL DEFAULT '',
    ADD COLUMN attr5 text NOT NULL DEFAULT '',
    ADD COLUMN attr6 text NOT NULL DEFAULT '',
    -- When the card was last imported: every field group an import sets
    -- came from it, unless `sources` says otherwise.
    ADD COLUMN imported_at timestamptz,
    -- Field groups whose values came from elsewhere since (kept small: an
    -- import clears its groups): {"status": {"from": "order", "at": "..."}}.
    ADD COLUMN sources jsonb NOT NULL DEFAULT '{}';

-- Searches.
CREATE INDEX cards_tenant_batch ON cards (tenant, batch_no, id);
CREATE INDEX cards_tenant_imei ON cards (tenant, imei) WHERE imei <> '';
CREATE INDEX cards_tenant_msisdn ON cards (tenant, msisdn) WHERE msisdn <> '';
-- Sorts: for each sorted value, the cards that have it in value order and
-- those that do not in key order (a missing figure sorts below every
-- figure; the list reads the two as segments). Each ends in the key, so a
-- page boundary is exact. A card is in exactly one of each pair.
CREATE INDEX cards_sort_used ON cards (tenant, flow_used_mb, id) WHERE flow_used_mb IS NOT NULL;
CREATE INDEX cards_none_used ON cards (tenant, id) WHERE flow_used_mb IS NULL;
CREATE INDEX cards_sort_left ON cards (tenant, flow_left_mb, id) WHERE flow_left_mb IS NOT NULL;
CREATE INDEX cards_none_left ON cards (tenant, id) WHERE flow_left_mb IS NULL;
CREATE INDEX cards_sort_act ON cards (tenant, act_date, id) WHERE act_date IS NOT NULL;
CREATE INDEX cards_none_act ON cards (tenant, id) WHERE act_date IS NULL;
CREATE INDEX cards_sort_expire ON cards (tenant, expire_time, id) WHERE expire_time IS NOT NULL;
CREATE INDEX cards_none_expire ON cards (tenant, id) WHERE expire_time IS NULL;

-- Cards with used data but no allowance (so no left data): what a list
-- sorted by left data with a used-data range reads as its segment without
-- left data. Usually tiny; without it that segment walked every card
-- without left data (2.2 s at 10M cards).
CREATE INDEX cards_used_no_allowance ON cards (tenant, id) WHERE allowance_mb IS NULL AND flow_used_mb IS NOT NULL;

-- Which cards a tenant holds changes only with an import (a new card, or
-- the operator moving a card to or from it): every such import moves that
-- tenant's generation.
CREATE TABLE card_membership (
    tenant      text PRIMARY KEY,
    generation  bigint NOT NULL
);

-- Every ANCHOR_EVERY-th card of a tenant in key order, as of a generation:
-- page N of the unfiltered list starts from the anchor before it instead
-- of counting every row before it. Valid while the generation stands.
CREATE TABLE card_anchors (
    tenant      text NOT NULL,
    ordinal     bigint NOT NULL,           -- 0, ANCHOR_EVERY, 2 x ANCHOR_EVERY, ...
    id          text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, ordinal)
);
CREATE TABLE card_anchor_sets (
    tenant      text PRIMARY KEY,
    generation  bigint NOT NULL,
    total       bigint NOT NULL            -- the tenant's cards at that generation
);
