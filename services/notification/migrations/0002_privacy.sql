-- privacy: the customer's keyed hash (rate limits across tickets, erasure, export) and when the
-- ticket closed (retention of what this schema holds about the customer).
ALTER TABLE tickets ADD COLUMN customer_key text;
ALTER TABLE tickets ADD COLUMN closed_at timestamptz;
CREATE INDEX tickets_customer_key ON tickets (customer_key) WHERE customer_key IS NOT NULL;
ALTER TABLE tickets ADD COLUMN contact_purged_at timestamptz;
ALTER TABLE tickets ADD COLUMN erased_at timestamptz;
CREATE INDEX tickets_retention ON tickets (closed_at) WHERE closed_at IS NOT NULL AND contact_purged_at IS NULL;
