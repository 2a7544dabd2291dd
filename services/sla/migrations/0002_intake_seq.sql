-- The last intake event (per-ticket seq) applied: intake's events are applied in seq order even when
-- the broker delivers them concurrently or to several replicas.
ALTER TABLE tickets ADD COLUMN intake_seq integer NOT NULL DEFAULT 0;
