-- The regular-update (next_update) clock's cycles per ticket (issue #15): each distinct sla.met /
-- sla.breached with metric next_update, as recorded in ``state`` under its seq key (so duplicates count
-- once). Backfilled from the state already folded.
ALTER TABLE facts ADD COLUMN nu_met integer NOT NULL DEFAULT 0,
                  ADD COLUMN nu_breached integer NOT NULL DEFAULT 0;
UPDATE facts SET
    nu_met = (SELECT count(*) FROM jsonb_object_keys(coalesce(state #> '{sla,next_update,met}', '{}'))),
    nu_breached = (SELECT count(*) FROM jsonb_object_keys(coalesce(state #> '{sla,next_update,breached}', '{}')))
WHERE state #> '{sla,next_update}' IS NOT NULL;
