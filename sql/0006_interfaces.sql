-- 0006 — what the sending interfaces need: API tokens, rate-limit events, the log of refused requests.

-- Contacts have bigint ids (0004); a send's recipient keeps the contact it came from.
ALTER TABLE send_recipients ALTER COLUMN contact_id TYPE bigint USING NULL;

-- API tokens: only a SHA-256 of the token is kept (tokens are 32 random bytes: no need for a slow hash).
CREATE TABLE api_tokens (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_sha256    text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    label           text NOT NULL DEFAULT '' CHECK (length(label) <= 100),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);

-- Events counted in sliding windows, shared by every engine process: failed logins per account and per
-- client address (http.php, API, web), replies sent to e-mail senders.
CREATE TABLE rate_events (
    kind            text NOT NULL,
    key             text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rate_events_window ON rate_events (kind, key, at);

-- Requests refused before any send existed (http.php and e-mail codes other than 80/81). Never the
-- password; the number masked.
CREATE TABLE refused_requests (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    origin          text NOT NULL CHECK (origin IN ('http', 'email', 'api', 'web')),
    code            text NOT NULL,
    account_id      uuid REFERENCES accounts (id) ON DELETE SET NULL,
    client          text NOT NULL DEFAULT '',
    detail          text NOT NULL DEFAULT ''
);
CREATE INDEX refused_requests_at ON refused_requests (at);
