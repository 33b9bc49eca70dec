-- Card sync (docs/carriers.md, "Card sync"): what the carriers say about cards.

-- When the card was last read from its carrier: a sweep read, an on-demand
-- refresh, or the read that confirmed one of our orders. A sweep skips cards
-- read since it started.
ALTER TABLE cards ADD COLUMN synced_at timestamptz;
-- The carrier's own stop-reason code as last read (CMCC's 12 digits), kept
-- raw where it has no domain meaning.
ALTER TABLE cards ADD COLUMN stop_reason_raw text NOT NULL DEFAULT '';
-- The period flow_used_mb covers (CST days, both included): a calendar month,
-- or China Unicom's billing cycle.
ALTER TABLE cards ADD COLUMN flow_period_first date;
ALTER TABLE cards ADD COLUMN flow_period_last date;
-- A carrier's cards in key order: sweeps page through them.
CREATE INDEX cards_carrier_id ON cards (carrier, id);
