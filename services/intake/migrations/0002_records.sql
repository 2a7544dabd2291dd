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

-- Customer type and a unit's failed repairs look tickets up by privacy's customer_key (0002_customer_key)
-- and by invoice number.
CREATE INDEX tickets_invoice_no ON tickets (invoice_no) WHERE invoice_no IS NOT NULL;
