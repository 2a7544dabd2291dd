-- The duplicate look-up (store.find_duplicate) probes one ticket by (external_id, channel) and one by
-- (message_id, channel). Its keys were led by channel: a plan made while the table was empty (a fresh
-- deployment's first prepared statement, kept as the generic plan while the table grows) could not tell
-- the two keys apart and read the external id through the message-id key on channel alone, i.e. every
-- ticket of the channel (0.6 ms a ticket after 2,000, linear). Led by the column that tells tickets apart,
-- each key serves only its own branch, whatever the statistics say. Same uniqueness, same columns.
-- Rebuilding both keys holds the table's lock for a few seconds at a million tickets.
ALTER TABLE tickets
    DROP CONSTRAINT tickets_channel_external_id_key,
    DROP CONSTRAINT tickets_channel_message_id_key,
    ADD CONSTRAINT tickets_external_id_key UNIQUE (external_id, channel),
    ADD CONSTRAINT tickets_message_id_key UNIQUE (message_id, channel);
