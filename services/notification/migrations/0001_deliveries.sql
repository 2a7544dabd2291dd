-- Notification's schema: what it knows of tickets, the deliveries it owes, and every attempt.

-- Facts later rules need (language, urgency, assignee…). Never the customer's phone or email:
-- those stay in intake and are fetched just before a send.
CREATE TABLE tickets (
    ticket_no   text PRIMARY KEY,
    language    text,
    urgency     text,
    priority    text,
    category    text,
    assignee    text,
    customer_id text,
    has_phone   boolean,
    has_email   boolean,
    channel     text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (event, recipient, channel): the unique key makes redelivery harmless.
-- next_attempt_at is when the worker may take the row: due, held (quiet hours, rate limit),
-- backing off after a failure, or leased while a worker sends it.
CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    ticket_no        text,
    recipient        text        NOT NULL,
    rate_key         text        NOT NULL,
    channel          text        NOT NULL,
    template         text        NOT NULL,
    language         text,
    urgent           boolean     NOT NULL DEFAULT false,
    quiet            boolean     NOT NULL DEFAULT false,
    context          jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    held             text,
    last_error       text,
    recipient_masked text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    failed_at        timestamptz,
    dead_lettered_at timestamptz,
    UNIQUE (event_id, recipient, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_rate ON deliveries (rate_key, last_attempt_at) WHERE last_attempt_at IS NOT NULL;
CREATE INDEX deliveries_ticket ON deliveries (ticket_no);
CREATE INDEX deliveries_undead ON deliveries (id) WHERE status = 'failed' AND dead_lettered_at IS NULL;

-- The delivery log: every attempt with its outcome.
CREATE TABLE attempts (
    delivery_id bigint      NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    error       text,
    duration_ms integer,
    PRIMARY KEY (delivery_id, attempt)
);
