-- The customer-side clocks (issue #15): eta (a promised time) and next_update (regular updates).
-- The metric list names every clock agreed between the areas (coord/INTERFACES.md), records' too.
ALTER TABLE clocks DROP CONSTRAINT IF EXISTS clocks_metric_check;
ALTER TABLE clocks ADD CONSTRAINT clocks_metric_check
    CHECK (metric IN ('first_response', 'resolution', 'callback', 'revisit', 'step', 'eta', 'next_update'));
