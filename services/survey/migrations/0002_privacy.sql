-- privacy: when a ticket's customer was erased, and when a survey's comment was reduced to its masked
-- form after retention.
ALTER TABLE tickets ADD COLUMN erased_at timestamptz;
ALTER TABLE surveys ADD COLUMN comment_purged_at timestamptz;
CREATE INDEX tickets_customer_key ON tickets (customer_key) WHERE customer_key IS NOT NULL;
CREATE INDEX surveys_retention ON surveys (answered_at) WHERE comment IS NOT NULL AND comment_purged_at IS NULL;
