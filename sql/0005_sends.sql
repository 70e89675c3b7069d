-- 0005 — sends (envois), their recipients and every call attempt.
--
-- PostgreSQL is the single source of truth of the dialer: an attempt row is committed before its
-- originate request, so a crash can never make us call anyone twice by mistake or forget anyone.

CREATE TABLE sends (
    id                  uuid PRIMARY KEY,
    account_id          uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    message_id          uuid NOT NULL,
    greeting_message_id uuid,               -- NULL: no greeting ("press *" step skipped)
    transfer_number     text CHECK (transfer_number ~ '^\+[1-9][0-9]{1,14}$'),
    sender_e164         text CHECK (sender_e164 ~ '^\+[1-9][0-9]{1,14}$'),  -- verified; NULL: hidden
    comment             text NOT NULL DEFAULT '' CHECK (length(comment) <= 500),
    origin              text NOT NULL CHECK (origin IN ('web', 'http', 'email', 'api', 'cli')),
    status              text NOT NULL CHECK (status IN ('scheduled', 'running', 'paused', 'completed',
                                                        'cancelled')),
    start_at            timestamptz NOT NULL,     -- immediate sends: their creation time
    deferred            boolean NOT NULL DEFAULT false,
    extra_attempts      integer NOT NULL DEFAULT 0 CHECK (extra_attempts BETWEEN 0 AND 10),
    retry_interval_s    integer NOT NULL DEFAULT 1800 CHECK (retry_interval_s >= 0),
    voicemail_drop      boolean NOT NULL DEFAULT false,
    demo                boolean NOT NULL DEFAULT false,  -- created while the engine ran in demo mode
    recipients_total    integer NOT NULL CHECK (recipients_total > 0),
    credits_held        integer NOT NULL DEFAULT 0 CHECK (credits_held >= 0),
    credits_used        integer NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    idempotency_key     text,
    code                text,                     -- the http.php code this send answered (80, 81)
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    ended_at            timestamptz,
    last_claim_at       timestamptz,              -- fairness: the least recently served send goes first
    UNIQUE (account_id, id),
    UNIQUE (account_id, idempotency_key),
    FOREIGN KEY (account_id, message_id) REFERENCES messages (account_id, id),
    FOREIGN KEY (account_id, greeting_message_id) REFERENCES messages (account_id, id)
);
CREATE INDEX sends_account_created ON sends (account_id, created_at DESC);
CREATE INDEX sends_due ON sends (start_at) WHERE status = 'scheduled';
CREATE INDEX sends_active ON sends (status) WHERE status IN ('running', 'paused');

-- One row per distinct number of a send. state: pending (never called or due again), calling (an
-- attempt is open), done (final outcome), cancelled (the send was cancelled before its call).
CREATE TABLE send_recipients (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    send_id         uuid NOT NULL REFERENCES sends (id) ON DELETE CASCADE,
    e164            text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    is_mobile       boolean NOT NULL DEFAULT false,
    contact_id      uuid,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'calling', 'done',
                                                                      'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    outcome         text,
    final_at        timestamptz,
    UNIQUE (send_id, e164),
    CHECK ((state = 'done') = (outcome IS NOT NULL))
);
-- The claim query: due recipients of one send, in order.
CREATE INDEX send_recipients_due ON send_recipients (send_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX send_recipients_calling ON send_recipients (send_id) WHERE state = 'calling';

-- One row per call. id is the channel id given to Asterisk (a UUID) and the CDR's uniqueid.
-- state: originating (committed before the request: the call may or may not exist), live (Asterisk
-- accepted it), ended (outcome known).
CREATE TABLE attempts (
    id              uuid PRIMARY KEY,
    send_id         uuid NOT NULL REFERENCES sends (id) ON DELETE CASCADE,
    recipient_id    bigint NOT NULL REFERENCES send_recipients (id) ON DELETE CASCADE,
    attempt_no      integer NOT NULL CHECK (attempt_no >= 1),
    failover_of     uuid REFERENCES attempts (id),  -- same attempt moved to the next trunk
    node            text NOT NULL,
    app             text NOT NULL,
    trunk           text NOT NULL,
    state           text NOT NULL CHECK (state IN ('originating', 'live', 'ended')),
    demo            boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    ended_at        timestamptz,
    outcome         text,
    end_reason      text,
    cause           integer,
    sip_code        integer,
    dialstatus      text,
    ring_s          double precision,
    talk_s          double precision,
    transfer_outcome text,
    transfer_s      double precision,
    reconciled      text,                     -- how an attempt ended while nobody listened: cdr, lost
    CHECK ((state = 'ended') = (outcome IS NOT NULL))
);
CREATE INDEX attempts_recipient ON attempts (recipient_id, attempt_no);
CREATE INDEX attempts_open ON attempts (node, state) WHERE state <> 'ended';
CREATE INDEX attempts_send_created ON attempts (send_id, created_at);

-- credit_ledger.send_id keeps no foreign key: the ledger is the account's history and outlives
-- anything it mentions.
