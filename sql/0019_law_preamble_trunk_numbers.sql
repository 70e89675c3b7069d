-- 0019 — French law, what 0016 left (issue 18): the company a commercial call names in its preamble.

-- Who calls, on whose behalf (article L221-16 of the Code de la consommation): a commercial call opens
-- with the account's company name (engine/domain/preamble.py). NULL: the preamble says only that the
-- call is a commercial one.
ALTER TABLE accounts
    ADD COLUMN company_name text CHECK (length(btrim(company_name)) BETWEEN 1 AND 100);
