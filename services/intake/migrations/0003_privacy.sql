-- privacy: per-caller ticket-creation counters (HTTP quotas, shared by every replica), and the
-- moments a ticket's personal data was purged (retention) or erased (customer.erase).
CREATE TABLE quota_usage (
    caller       text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         integer     NOT NULL,
    PRIMARY KEY (caller, window_start)
);
ALTER TABLE tickets ALTER COLUMN customer_name DROP NOT NULL;
ALTER TABLE tickets ADD COLUMN contact_purged_at timestamptz;
ALTER TABLE tickets ADD COLUMN erased_at timestamptz;
CREATE INDEX tickets_retention ON tickets (closed_at) WHERE closed_at IS NOT NULL AND contact_purged_at IS NULL;
