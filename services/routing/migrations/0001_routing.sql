-- Routing: rules versions, departments, roster with load, the ticket queue, assignment history.

-- Every rules/roster file content the service has run with (the latest of a kind is current).
CREATE TABLE config_versions (
    id        bigserial   PRIMARY KEY,
    kind      text        NOT NULL CHECK (kind IN ('rules', 'roster')),
    version   text        NOT NULL,
    sha256    text        NOT NULL,
    source    text        NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX config_versions_kind ON config_versions (kind, id DESC);

-- From the rules file; the row is also the lock that serialises assignment in a department.
CREATE TABLE departments (
    name       text   PRIMARY KEY,
    categories text[] NOT NULL,
    lead       text,
    supervisor text,
    active     boolean NOT NULL DEFAULT true
);

CREATE TABLE agents (
    id               text        PRIMARY KEY,
    name             text,
    department       text        NOT NULL,
    capacity         integer     NOT NULL CHECK (capacity >= 0),
    available        boolean     NOT NULL DEFAULT true,
    load             integer     NOT NULL DEFAULT 0 CHECK (load >= 0),
    lead             text,
    last_assigned_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_department ON agents (department, load);

-- Routing's view of each ticket. state: assigned (holds a unit of its assignee's load), queued
-- (waiting for capacity in its department), unassigned (no department could take it: escalated),
-- released (resolved or closed).
CREATE TABLE tickets (
    ticket_no        text        PRIMARY KEY,
    channel          text        NOT NULL,
    tier             text        NOT NULL,
    urgency          text        NOT NULL,
    impact           text        NOT NULL,
    complaint        boolean     NOT NULL,
    category         text        NOT NULL,
    priority         text        NOT NULL,
    department       text,
    assignee         text,
    rule             text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('assigned', 'queued', 'unassigned', 'released')),
    queued_at        timestamptz,
    escalation_level integer     NOT NULL DEFAULT 0,
    breaches         integer     NOT NULL DEFAULT 0,
    warnings         integer     NOT NULL DEFAULT 0,
    negatives        integer     NOT NULL DEFAULT 0,
    rules_version    text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'assigned' OR assignee IS NOT NULL)  -- after release, assignee = the last one
);
CREATE INDEX tickets_queue ON tickets (department, queued_at, ticket_no) WHERE state = 'queued';
CREATE INDEX tickets_assignee ON tickets (assignee) WHERE state = 'assigned';

-- Every routing decision (first routing, re-routing, assignment from the queue, release).
CREATE TABLE assignments (
    id         bigserial   PRIMARY KEY,
    ticket_no  text        NOT NULL,
    action     text        NOT NULL,
    department text,
    agent      text,
    category   text,
    priority   text,
    rule       text,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX assignments_ticket ON assignments (ticket_no, id);

CREATE TABLE escalations (
    id         bigserial   PRIMARY KEY,
    ticket_no  text        NOT NULL,
    trigger    text        NOT NULL,
    level      integer     NOT NULL,
    role       text        NOT NULL,
    to_whom    text        NOT NULL,
    reason     text        NOT NULL,
    due_at     timestamptz,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX escalations_ticket ON escalations (ticket_no, id);
