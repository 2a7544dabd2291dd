-- Say when the changed clocks next fire (epoch seconds) in the wake-up: a timer loop already due to wake
-- before that ignores it (shared.dueloop, ``due_payloads``), so a clock started or moved later than the
-- next timer costs no timer pass (before: every commit that touched a clock woke every replica's loop).
-- A change that leaves no clock to fire (stopped, paused) wakes nobody. Two triggers: a trigger with a
-- transition table takes one event and no column list.
DROP TRIGGER timers_notify ON clocks;
CREATE OR REPLACE FUNCTION timers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first timestamptz;
BEGIN
    SELECT min(fire_at) INTO first FROM changed;
    IF first IS NOT NULL THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_timers', extract(epoch FROM first)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER timers_notify_insert AFTER INSERT ON clocks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION timers_notify();
CREATE TRIGGER timers_notify_update AFTER UPDATE ON clocks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION timers_notify();
