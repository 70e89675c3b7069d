-- 0018 — personal data (issue 20, RGPD half): account deletion that keeps the ledger, pseudonymised
-- numbers, and what the retention purge needs (engine/store/privacy.py, README « Données personnelles »).

-- Keyed hashes (HMAC-SHA256 with the server secret) are computed where the rows are: pgcrypto's hmac().
-- A trusted extension since PostgreSQL 13: the database owner (the engine's role) may create it.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- A deleted account keeps its row, emptied of everything personal (its login becomes
-- « supprime-<id>@invalid », its password and personal code random), because the accounting ledger
-- hangs on it and French law keeps accounting records for ten years (Code de commerce, L123-22).
ALTER TABLE accounts ADD COLUMN deleted_at timestamptz;

-- A number the retention purge or an erasure pseudonymised: '#' and the HMAC-SHA256 of its E.164 form
-- (lower-case hex). The same number gives the same pseudonym everywhere, so the history still counts
-- distinct callees; without the server secret nobody can test a guess against it.
ALTER TABLE send_recipients DROP CONSTRAINT IF EXISTS send_recipients_e164_check;
ALTER TABLE send_recipients
    ADD CONSTRAINT send_recipients_e164_check
    CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$' OR e164 ~ '^#[0-9a-f]{64}$');

-- The purge's scans: old CDRs (asterisk_cdr keeps Asterisk's columns only: cdr_pgsql matches them by
-- name; a pseudonymised CDR is told by its dst starting with '#'), recipients of sends ended long ago.
CREATE INDEX asterisk_cdr_to_pseudonymise ON asterisk_cdr (start) WHERE dst NOT LIKE '#%';
CREATE INDEX sends_ended ON sends (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX refused_requests_account ON refused_requests (account_id) WHERE account_id IS NOT NULL;
