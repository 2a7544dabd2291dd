-- privacy: the contract's customer_key (HMAC of the normalised phone / email / id) on every ticket,
-- so erasure, export and rate limits find a customer's tickets without the raw contact.
ALTER TABLE tickets ADD COLUMN customer_key text;
CREATE INDEX tickets_customer_key ON tickets (customer_key) WHERE customer_key IS NOT NULL;
