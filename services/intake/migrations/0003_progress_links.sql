-- The customer's progress page (issue #15): one link per ticket. The token itself is never stored:
-- it is HMAC-SHA256(INTAKE_PROGRESS_SECRET, salt || ticket_no), so intake can say it again (in the
-- contact lookup notification makes before a send) while this table alone opens nothing. Lookups go
-- by sha256(token).
CREATE TABLE progress_links (
    ticket_no             text PRIMARY KEY REFERENCES tickets (ticket_no) ON DELETE CASCADE,
    salt                  bytea NOT NULL,
    token_hash            bytea NOT NULL UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now(),
    confirmed_resolved_at timestamptz,   -- the resolution (its resolved_at) the customer confirmed
    last_callback_at      timestamptz,   -- the customer's last call-back request (rate limit)
    window_start          timestamptz,   -- the write budget: writes since window_start
    writes                integer NOT NULL DEFAULT 0
);
