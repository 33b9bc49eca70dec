-- Daily data usage per card (docs/operations.md, "Usage"): one row per card
-- and China-time month, the month's days in one array, so a card's year
-- costs 13 rows, not 396 (about 340 bytes a row against 139 bytes a day).
-- mb[d] is day d's figure (NULL: none). Bit d-1 of carrier_days set: the
-- carrier's own daily figure (China Mobile 25U01); clear: the growth of the
-- card's monthly figure between the newest snapshot of the day before and
-- the newest of that day (derived; a day after a gap in the snapshots has
-- none). A carrier figure replaces a derived one, never the reverse.
CREATE TABLE card_usage_days (
    card          text NOT NULL,
    month         date NOT NULL,      -- the month's first day
    mb            float8[] NOT NULL,  -- 31 elements
    carrier_days  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (card, month)
);
-- Rows arrive in month order, so a block-range index finds the months past
-- the retention window for a few kilobytes.
CREATE INDEX card_usage_days_month ON card_usage_days USING brin (month);

-- A month's array with only day d set to v.
CREATE FUNCTION usage_day(d integer, v float8) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(CASE WHEN i = d THEN v END ORDER BY i) FROM generate_series(1, 31) AS i
$$;

-- Derived growth added to the days `add` sets, except the carrier's days.
CREATE FUNCTION usage_add(old float8[], add float8[], carrier integer) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(CASE WHEN a IS NULL OR (carrier >> (i::integer - 1)) & 1 = 1 THEN o
                        ELSE coalesce(o, 0) + a END ORDER BY i)
  FROM unnest(old, add) WITH ORDINALITY AS x(o, a, i)
$$;

-- The carrier's figures put on the days `put` sets.
CREATE FUNCTION usage_put(old float8[], put float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(coalesce(p, o) ORDER BY i) FROM unnest(old, put) WITH ORDINALITY AS x(o, p, i)
$$;
