-- 0019 — French law, what 0016 left (issue 18): the company a commercial call names in its preamble,
-- and the presented numbers each trunk's carrier accepts.

-- Who calls, on whose behalf (article L221-16 of the Code de la consommation): a commercial call opens
-- with the account's company name (engine/domain/preamble.py). NULL: the preamble says only that the
-- call is a commercial one.
ALTER TABLE accounts
    ADD COLUMN company_name text CHECK (length(btrim(company_name)) BETWEEN 1 AND 100);

-- The presented numbers (E.164) a trunk's carrier accepts for us in From: a send presenting a number goes
-- only through the trunks whose list holds it (engine/domain/routing.py); hidden calls through any.
ALTER TABLE trunks
    ADD COLUMN presented text[] NOT NULL DEFAULT '{}'
        CHECK (array_to_string(presented, ',') ~ '^(\+[1-9][0-9]{1,14}(,|$))*$');
