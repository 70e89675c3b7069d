-- 0016 — French law built in (issue 18): the purpose of a send, contacts' consent, stop lists, and what
-- the dialer reads to keep commercial sends within article D223-9 (engine/domain/commercial.py).

-- A send is 'information' (reminders, alerts, internal messages) or 'commercial' (prospection, offers).
-- Existing sends and accounts were all information sends; http.php and e-mail sends take the account's
-- default, web and API sends state theirs.
ALTER TABLE sends
    ADD COLUMN purpose text NOT NULL DEFAULT 'information' CHECK (purpose IN ('information', 'commercial')),
    -- Numbers of the request left out because they are on a stop list (information sends only: a
    -- commercial send with such a number is refused, code 99).
    ADD COLUMN stop_listed_skipped integer NOT NULL DEFAULT 0 CHECK (stop_listed_skipped >= 0);
ALTER TABLE accounts
    ADD COLUMN default_purpose text NOT NULL DEFAULT 'information'
        CHECK (default_purpose IN ('information', 'commercial'));

-- Consent to commercial automated calls (L34-5 CPCE, L223-1 Code de la consommation): since when, from
-- where, the proof as the customer recorded it, and when it was withdrawn. No consent_at: no consent.
ALTER TABLE contacts
    ADD COLUMN consent_at           timestamptz,
    ADD COLUMN consent_source       text CHECK (length(consent_source) <= 200),
    ADD COLUMN consent_proof        text CHECK (length(consent_proof) <= 2000),
    ADD COLUMN consent_withdrawn_at timestamptz,
    ADD CONSTRAINT contacts_consent_given
        CHECK (consent_at IS NOT NULL OR (consent_source IS NULL AND consent_proof IS NULL
                                          AND consent_withdrawn_at IS NULL));

-- An account's stop list ("liste d'opposition"): numbers that no later send of the account calls,
-- whatever its purpose. A number is kept by the SHA-256 of its E.164 form (engine/domain/stoplists.py),
-- so a list imported hashed and a number stopped in clear meet; e164 is kept when it was known.
CREATE TABLE account_stop_list (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    number_hash text COLLATE "C" NOT NULL CHECK (number_hash ~ '^[0-9a-f]{64}$'),
    e164        text CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    added_at    timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL CHECK (source IN ('dtmf', 'import', 'callback', 'manual')),
    PRIMARY KEY (account_id, number_hash)
);

-- The operator's own list: numbers no account's send ever calls.
CREATE TABLE operator_stop_list (
    number_hash text COLLATE "C" PRIMARY KEY CHECK (number_hash ~ '^[0-9a-f]{64}$'),
    e164        text CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    added_at    timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL CHECK (source IN ('dtmf', 'import', 'callback', 'manual')),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 500)
);

-- The cap (4 attempts per number per 30 days) and the 60 days after a refusal count across all of an
-- account's commercial sends: the dialer reads a number's recent attempts through its recipient rows.
CREATE INDEX send_recipients_number ON send_recipients (e164, send_id);

-- Why a recipient of a commercial send waits (hors plage horaire, jour férié, plafond, opposition) or
-- was left out while the send ran (stop-listed, consent withdrawn: state 'cancelled').
ALTER TABLE send_recipients DROP CONSTRAINT IF EXISTS send_recipients_wait_reason_check;
ALTER TABLE send_recipients
    ADD CONSTRAINT send_recipients_wait_reason_check
    CHECK (wait_reason IN ('no_route', 'trunk_failure', 'our_cut', 'outside_hours', 'holiday',
                           'cap_reached', 'refused', 'stop_listed', 'no_consent'));
