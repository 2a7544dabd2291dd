-- The review: one fact row per ticket, folded from every event on helpdesk.events.
-- ``state`` is the whole truth (each field keyed by the event's seq, so any arrival order folds to the
-- same row); the typed columns are derived from it for fast aggregation.
CREATE TABLE facts (
    ticket_no          text PRIMARY KEY,
    received_at        timestamptz,          -- null until ticket.created is seen (a partial fact)
    channel            text,
    customer_key       text,
    complaint          boolean NOT NULL DEFAULT false,  -- category complaint/attitude, or a complaint block
    complaint_type     text,
    category           text,
    sub_item           text,
    cause              text,
    responsibility     text,
    priority           text,
    department         text,
    complaint_department text,           -- ticket.determined's department, else the routed one
    assignee           text,
    agent              text,
    first_response_at  timestamptz,
    first_resolved_at  timestamptz,
    final_resolved_at  timestamptz,
    closed_at          timestamptz,
    first_outcome      text,
    first_contact      boolean,
    reopen_count       integer NOT NULL DEFAULT 0,
    escalations        integer NOT NULL DEFAULT 0,
    fr_us              bigint,               -- received_at -> first response, microseconds
    res_us             bigint,               -- received_at -> first resolution, microseconds
    fr_bus_us          bigint,               -- the same on the ticket's SLA calendar
    res_bus_us         bigint,
    fr_sla             text,                 -- met | breached | null
    res_sla            text,
    fr_sla_business_s  double precision,     -- sla.met business_seconds
    res_sla_business_s double precision,
    sla_calendar       text,
    surveys_sent       integer NOT NULL DEFAULT 0,
    surveys_answered   integer NOT NULL DEFAULT 0,
    surveys_satisfied  integer NOT NULL DEFAULT 0,
    resolved_ats       timestamptz[] NOT NULL DEFAULT '{}',
    reopened_ats       timestamptz[] NOT NULL DEFAULT '{}',
    state              jsonb NOT NULL DEFAULT '{}',
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX facts_received ON facts (received_at);
CREATE INDEX facts_complaints ON facts (customer_key, received_at) WHERE complaint;
CREATE INDEX facts_open ON facts (received_at) WHERE closed_at IS NULL;

-- Per-ticket seq idempotency: (ticket, publishing service, seq) applied once, whatever the event id.
CREATE TABLE applied (
    ticket_no text NOT NULL,
    source    text NOT NULL,
    seq       bigint NOT NULL,
    PRIMARY KEY (ticket_no, source, seq)
);

-- Published reviews: frozen at 02:00 on the 1st; a recompute shows the differences, never overwrites.
CREATE TABLE snapshots (
    period     text PRIMARY KEY,
    frozen_at  timestamptz NOT NULL DEFAULT now(),
    body       jsonb NOT NULL
);

-- Improvement actions (改进措施).
CREATE TABLE actions (
    id           uuid PRIMARY KEY,
    period       text NOT NULL,
    finding      text NOT NULL,
    metric       text NOT NULL,
    measure      text NOT NULL,
    owner        text NOT NULL,
    deadline     date NOT NULL,
    status       text NOT NULL DEFAULT 'open',
    target_value double precision,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX actions_period ON actions (period);
