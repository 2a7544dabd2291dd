-- access: every read of a customer's unmasked contact (who, which ticket, when), and the per-key
-- rate limit's fixed one-minute windows.
CREATE TABLE contact_reads (
    id        bigserial PRIMARY KEY,
    caller    text        NOT NULL,
    ticket_no text        NOT NULL,
    read_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_reads_caller ON contact_reads (caller, read_at);
CREATE INDEX contact_reads_ticket ON contact_reads (ticket_no);

CREATE TABLE contact_rate (
    caller       text        NOT NULL,
    window_start timestamptz NOT NULL,
    reads        integer     NOT NULL,
    PRIMARY KEY (caller, window_start)
);
