-- Publish on commit: the process that commits an event publishes it itself right after the commit
-- (shared.outbox.Relay.hand); meanwhile its row carries a lease. The relay takes only rows without a live
-- lease — a process that died between its commit and its publish, a publish that failed — and NOTIFY wakes
-- it only for rows nobody is publishing already (so a commit no longer costs a relay pass of its own).
ALTER TABLE outbox ADD COLUMN lease_until timestamptz;

DROP TRIGGER outbox_notify ON outbox;
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted WHERE lease_until IS NULL) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
