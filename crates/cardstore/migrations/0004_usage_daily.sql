-- Daily data usage per card (docs/operations.md, "Usage"): one row per card
-- and China-time day. `derived = false`: the carrier's own daily figure
-- (China Mobile 25U01). `derived = true`: the growth of the card's monthly
-- figure between the newest snapshot of the day before and the newest of
-- that day (carriers with no daily query; a day after a gap in the
-- snapshots has no row). A carrier figure replaces a derived one, never
-- the reverse.
CREATE TABLE card_usage_daily (
    card     text NOT NULL,
    day      date NOT NULL,
    mb       double precision NOT NULL,
    derived  boolean NOT NULL,
    PRIMARY KEY (card, day)
);
-- Rows arrive in day order, so a block-range index finds the days past the
-- retention window for a few kilobytes (a B-tree would add a third to the
-- table's size).
CREATE INDEX card_usage_daily_day ON card_usage_daily USING brin (day);
