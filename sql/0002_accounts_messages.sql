-- 0002 — accounts, their sender numbers, their credits ledger and their message library.

-- An account. The login is the lower-cased e-mail (the store lower-cases; the index guarantees it).
-- The personal code is stored only as HMAC-SHA256(server secret, code): the recording IVR finds the
-- account from what was typed, nobody can read the code back.
CREATE TABLE accounts (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email                       text NOT NULL CHECK (email LIKE '%_@_%'),
    password_hash               text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    code_digest                 text NOT NULL CHECK (code_digest ~ '^[0-9a-f]{64}$'),
    -- options
    allow_international         boolean NOT NULL DEFAULT false,
    allow_voicemail_drop        boolean NOT NULL DEFAULT true,
    -- credits: available = sum(credit_ledger.amount), held by unfinished sends = sum(credit_ledger.held).
    -- Every movement updates this row in the same transaction as its ledger entry: the row lock
    -- serialises movements of one account, the CHECKs make a negative balance impossible.
    balance                     integer NOT NULL DEFAULT 0 CHECK (balance >= 0),
    reserved                    integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    -- the next message reference; refs are never reused, even after a deletion
    next_message_ref            integer NOT NULL DEFAULT 1 CHECK (next_message_ref > 0),
    -- default send options: used when a channel cannot carry them (http.php, e-mail subject)
    default_greeting_enabled    boolean NOT NULL DEFAULT false,
    default_greeting_message_id uuid,
    default_transfer_number     text CHECK (default_transfer_number ~ '^\+[1-9][0-9]{1,14}$'),
    default_sender_number_id    bigint,
    default_retries             integer NOT NULL DEFAULT 0 CHECK (default_retries BETWEEN 0 AND 10),
    default_retry_interval_s    integer NOT NULL DEFAULT 1800
                                CHECK (default_retry_interval_s BETWEEN 60 AND 86400),
    default_voicemail_drop      boolean NOT NULL DEFAULT false,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT default_greeting_enabled OR default_greeting_message_id IS NOT NULL),
    CHECK (allow_voicemail_drop OR NOT default_voicemail_drop)
);
CREATE UNIQUE INDEX accounts_email ON accounts (lower(email));
CREATE UNIQUE INDEX accounts_code_digest ON accounts (code_digest);

-- Declared caller IDs. Only verified ones are ever presented; a mobile can never be verified (ARCEP).
CREATE TABLE sender_numbers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    e164            text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified')),
    is_mobile       boolean NOT NULL,
    declared_at     timestamptz NOT NULL DEFAULT now(),
    verified_at     timestamptz,
    UNIQUE (account_id, e164),
    UNIQUE (account_id, id),  -- target of the account's default sender (same account guaranteed)
    CHECK ((status = 'verified') = (verified_at IS NOT NULL)),
    CHECK (NOT (is_mobile AND status = 'verified'))
);

-- Every credit movement. amount changes the available balance, held what a send holds:
--   credit   +N   0     (operator)
--   reserve  -N  +N     (a send is created)
--   consume   0  -N     (a delivered call spends one of its send's reserved credits)
--   release  +N  -N     (what a finished or cancelled send did not spend)
-- send_id has no foreign key yet: sends arrive with the dialer's migration.
CREATE TABLE credit_ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL CHECK (kind IN ('credit', 'reserve', 'consume', 'release')),
    amount          integer NOT NULL,
    held            integer NOT NULL DEFAULT 0,
    reason          text NOT NULL DEFAULT '',
    send_id         uuid,
    CHECK (
        (kind = 'credit' AND amount > 0 AND held = 0)
        OR (kind = 'reserve' AND amount < 0 AND held = -amount AND send_id IS NOT NULL)
        OR (kind = 'consume' AND amount = 0 AND held < 0 AND send_id IS NOT NULL)
        OR (kind = 'release' AND amount > 0 AND held = -amount AND send_id IS NOT NULL)
    )
);
CREATE INDEX credit_ledger_account ON credit_ledger (account_id, id);
CREATE INDEX credit_ledger_send ON credit_ledger (account_id, send_id) WHERE send_id IS NOT NULL;

-- The message library. The engine picks id before converting: it names the files. Paths are relative
-- to the media directory (a setting), so the directory can move.
CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    ref             integer NOT NULL CHECK (ref > 0),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 120),
    origin          text NOT NULL CHECK (origin IN ('phone', 'file')),
    is_greeting     boolean NOT NULL DEFAULT false,
    duration_s      double precision NOT NULL CHECK (duration_s > 0),
    audio_stem      text NOT NULL,      -- + .wav (slin 8 kHz), .alaw, .ulaw
    original_file   text NOT NULL,      -- the upload as received, for download
    original_name   text,               -- the customer's file name
    loudness_lufs   double precision NOT NULL,
    true_peak_dbfs  double precision NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Deleted messages keep their row (sends' history names them) but lose their files.
    deleted_at      timestamptz,
    UNIQUE (account_id, ref),
    UNIQUE (account_id, id)  -- target of the account's default greeting (same account guaranteed)
);
CREATE INDEX messages_account_live ON messages (account_id, ref) WHERE deleted_at IS NULL;

-- The defaults may only point at the account's own greeting and sender number. SET NULL names its
-- column (PostgreSQL 15) so that removing the target never nulls accounts.id.
ALTER TABLE accounts
    ADD CONSTRAINT accounts_default_greeting_fk
        FOREIGN KEY (id, default_greeting_message_id) REFERENCES messages (account_id, id)
        ON DELETE SET NULL (default_greeting_message_id),
    ADD CONSTRAINT accounts_default_sender_fk
        FOREIGN KEY (id, default_sender_number_id) REFERENCES sender_numbers (account_id, id)
        ON DELETE SET NULL (default_sender_number_id);
