-- Intake: the system of record for tickets.

-- Ticket serials come from one sequence per day, intake.serial_YYYYMMDD, created on the day's
-- first ticket (see store.next_serial).

CREATE TABLE tickets (
    ticket_no         text PRIMARY KEY,
    channel           text NOT NULL,
    external_id       text,
    message_id        text,          -- the AMQP message id / Idempotency-Key when no external_id
    status            text NOT NULL CHECK (status IN ('new','assigned','in_progress','waiting','resolved','closed')),
    customer_name     text NOT NULL,
    customer_id       text,
    customer_phone    text,          -- unmasked: only intake holds it (for notification)
    customer_email    text,          -- unmasked
    customer_tier     text NOT NULL,
    customer_language text,
    subject           text,
    description       text,
    kind              text,
    urgency           text NOT NULL,
    impact            text NOT NULL,
    order_no          text,
    product           text,
    complaint         jsonb,
    caller            text,
    received_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- assignment, from routing's ticket.routed
    category          text,
    priority          text,
    department        text,
    assignee          text,
    first_assignee    text,
    rule              text,
    routed_seq        integer NOT NULL DEFAULT 0,
    -- handling facts
    escalated         boolean NOT NULL DEFAULT false,
    responses         integer NOT NULL DEFAULT 0,
    reopened          integer NOT NULL DEFAULT 0,
    first_response_at timestamptz,
    waiting_since     timestamptz,
    outcome           text,
    first_contact     boolean,
    resolved_at       timestamptz,
    closed_at         timestamptz,
    UNIQUE (channel, external_id),
    UNIQUE (channel, message_id)
);
CREATE INDEX tickets_status ON tickets (status) WHERE status <> 'closed';

-- Everything that happened to a ticket, from every service (fed by helpdesk.events).
CREATE TABLE timeline (
    event_id  text PRIMARY KEY,
    ticket_no text        NOT NULL,
    type      text        NOT NULL,
    source    text        NOT NULL,
    seq       integer,
    time      timestamptz NOT NULL,
    data      jsonb       NOT NULL
);
CREATE INDEX timeline_ticket ON timeline (ticket_no, time, seq);
