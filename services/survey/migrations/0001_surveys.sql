-- Survey: the tickets it has heard of, the surveys (with their due work) and customers' history.

-- What the survey knows of a ticket. Events of one ticket may be handled in any order (a queue's
-- messages are processed concurrently, and by several replicas), so every handler first locks this
-- row (creating a stub when ticket.created has not been handled yet) and orders by intake's seq.
CREATE TABLE tickets (
    ticket_no    text PRIMARY KEY,
    known        boolean     NOT NULL DEFAULT false,  -- ticket.created handled
    customer_key text,                 -- 'id:<customer.id>' | 'phone:<masked>' | 'email:<masked>' | NULL
    language     text        NOT NULL DEFAULT 'zh-CN',
    complaint    boolean     NOT NULL DEFAULT false,
    created_at   timestamptz,
    reopened_seq integer     NOT NULL DEFAULT 0       -- intake seq of the latest ticket.reopened
);

-- One row per resolution. ``due_at`` is the next moment the scheduler must act on the row
-- (send, remind, expire); NULL once nothing is left to do.
CREATE TABLE surveys (
    survey_id        uuid PRIMARY KEY,
    ticket_no        text        NOT NULL,
    token            text        NOT NULL UNIQUE,
    status           text        NOT NULL CHECK (status IN ('scheduled','sent','answered','expired','cancelled')),
    language         text        NOT NULL,
    customer_key     text,
    complaint        boolean     NOT NULL,
    resolution_event text        NOT NULL UNIQUE,
    resolution_seq   integer     NOT NULL,           -- intake seq of the ticket.resolved
    resolved_at      timestamptz NOT NULL,
    send_at          timestamptz NOT NULL,
    remind_at        timestamptz,
    expires_at       timestamptz,
    due_at           timestamptz,
    sent_at          timestamptz,
    reminded_at      timestamptz,
    answered_at      timestamptz,
    ended_at         timestamptz,  -- expired or cancelled
    cancel_reason    text,
    resolved         boolean,
    speed            smallint CHECK (speed BETWEEN 1 AND 5),
    attitude         smallint CHECK (attitude BETWEEN 1 AND 5),
    overall          smallint CHECK (overall BETWEEN 1 AND 5),
    comment          text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- At most one live (scheduled or unanswered) survey per ticket.
CREATE UNIQUE INDEX surveys_live ON surveys (ticket_no) WHERE status IN ('scheduled', 'sent');
CREATE INDEX surveys_due ON surveys (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX surveys_sent_at ON surveys (sent_at) WHERE sent_at IS NOT NULL;

-- A customer's complaints and negative surveys, for the 30-day repeat-complainant flag.
CREATE TABLE customer_history (
    customer_key text        NOT NULL,
    ticket_no    text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('complaint', 'negative_survey')),
    at           timestamptz NOT NULL,
    PRIMARY KEY (customer_key, ticket_no, kind)
);
CREATE INDEX customer_history_at ON customer_history (customer_key, at);

-- Wake the due-work scheduler when a row's next due moment is set (delivered on commit).
CREATE FUNCTION surveys_due_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_due', '');
    RETURN NULL;
END $$;
CREATE TRIGGER surveys_due_notify AFTER INSERT OR UPDATE OF due_at ON surveys
    FOR EACH STATEMENT EXECUTE FUNCTION surveys_due_notify();
