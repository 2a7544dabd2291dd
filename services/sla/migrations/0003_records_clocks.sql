-- Records (#14): the revisit clock and per-step clocks (one row per step: metric 'step:<name>'), and
-- the customer's expected_by, which may tighten the resolution target. The metric check also admits
-- the customer area's eta / next_update clocks (INTERFACES.md), so either migration order works.
ALTER TABLE clocks DROP CONSTRAINT IF EXISTS clocks_metric_check;
ALTER TABLE clocks ADD CONSTRAINT clocks_metric_known CHECK (
    metric IN ('first_response', 'resolution', 'callback', 'revisit', 'eta', 'next_update')
    OR metric ~ '^step:[a-z][a-z0-9_]{0,63}$');
ALTER TABLE tickets ADD COLUMN expected_by timestamptz;
