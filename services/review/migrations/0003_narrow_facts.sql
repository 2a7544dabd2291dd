-- Narrow fact rows for the report's scans (issue #11, 1,000,000 tickets a month): the folded ``state``
-- (the whole truth, ~0.9 kB a ticket) moves to its own table, read and locked by ticket when events
-- fold; the report scans only the typed columns. A published review keeps its exact sufficient
-- statistics beside its body, so the next period's "previous" and the trend read them instead of
-- scanning a frozen month again. Closed tickets leave the backlog scan through an index.
CREATE TABLE fact_states (
    ticket_no text PRIMARY KEY,
    state     jsonb NOT NULL DEFAULT '{}'
);
INSERT INTO fact_states (ticket_no, state) SELECT ticket_no, state FROM facts;
ALTER TABLE facts DROP COLUMN state;
ALTER TABLE snapshots ADD COLUMN stats jsonb;
CREATE INDEX facts_closed ON facts (closed_at);
