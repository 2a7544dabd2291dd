-- SLA: what the service knows of each ticket, and its clocks (each clock row is also its timer).

CREATE TABLE tickets (
    ticket_no   text PRIMARY KEY,
    received_at timestamptz,                 -- null while only ticket.routed has been seen
    channel     text,
    tier        text NOT NULL DEFAULT 'standard',
    priority    text,
    category    text,
    waiting     boolean NOT NULL DEFAULT false,
    closed      boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clocks (
    ticket_no  text NOT NULL,
    metric     text NOT NULL CHECK (metric IN ('first_response', 'resolution', 'callback')),
    priority   text NOT NULL,
    policy     text NOT NULL,
    calendar   text NOT NULL,
    target_s   double precision NOT NULL CHECK (target_s > 0),
    started_at timestamptz NOT NULL,
    segments   jsonb NOT NULL DEFAULT '[]',  -- closed running intervals [[start_epoch, end_epoch], ...]
    open_since timestamptz,                  -- start of the running interval; null while paused/stopped
    warned     boolean NOT NULL DEFAULT false,
    breached   boolean NOT NULL DEFAULT false,
    outcome    text CHECK (outcome IN ('met', 'breached', 'cancelled')),
    stopped_at timestamptz,
    due_at     timestamptz,
    warn_at    timestamptz,
    fire_at    timestamptz,                  -- the next timer; null when nothing is left to announce
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_no, metric)
);
-- The timer queue: due rows are claimed in fire_at order with FOR UPDATE SKIP LOCKED.
CREATE INDEX clocks_fire_at ON clocks (fire_at) WHERE fire_at IS NOT NULL;

-- Wake every replica's timer loop when a timer is added or moved (delivered on commit).
CREATE FUNCTION timers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_timers', '');
    RETURN NULL;
END $$;
CREATE TRIGGER timers_notify AFTER INSERT OR UPDATE OF fire_at ON clocks
    FOR EACH STATEMENT EXECUTE FUNCTION timers_notify();
