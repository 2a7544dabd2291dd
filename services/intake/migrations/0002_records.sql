-- Service and complaint records (#14): what the seeds' templates keep beyond the ticket.
ALTER TABLE tickets
    ADD COLUMN product_model  text,
    ADD COLUMN purchase_date  date,          -- the invoice / purchase date: the warranty runs from it
    ADD COLUMN invoice_no     text,
    ADD COLUMN service_type   text,
    ADD COLUMN expected_by    timestamptz,   -- the customer's own expected resolution time
    ADD COLUMN customer_type  text CHECK (customer_type IN ('new', 'returning')),
    ADD COLUMN warranty       jsonb,         -- the 三包 check at intake
    ADD COLUMN cause          text,          -- from the diagnosis, or resolve's cause
    ADD COLUMN sub_item       text,
    ADD COLUMN diagnosis      jsonb,
    ADD COLUMN appointment    jsonb,         -- place unmasked here (intake holds personal data)
    ADD COLUMN verification   jsonb,
    ADD COLUMN determination  jsonb,
    ADD COLUMN revisit        jsonb;

-- Which customer (keyed hash, never the contact) had which ticket: customer type and failed repairs.
CREATE TABLE customer_tickets (
    ticket_no     text PRIMARY KEY REFERENCES tickets (ticket_no) ON DELETE CASCADE,
    customer_key  text        NOT NULL,
    received_at   timestamptz NOT NULL,
    product_model text,
    invoice_no    text
);
CREATE INDEX customer_tickets_key ON customer_tickets (customer_key, received_at);
CREATE INDEX customer_tickets_invoice ON customer_tickets (invoice_no) WHERE invoice_no IS NOT NULL;
