-- 0008 — the customer's web space: login sessions and password-reset links.
--
-- Both keep only a SHA-256 of the secret the browser or the e-mail holds (32 random bytes: a fast hash
-- is enough, nobody can guess the input), so a copy of the database opens no session and resets no
-- password.

-- A logged-in browser. The cookie carries the token (signed with the server secret); the row says whose
-- it is and until when. Logging out, changing or resetting the password delete rows: the cookie is then
-- worth nothing, even if it was copied.
CREATE TABLE web_sessions (
    token_sha256    text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    -- idle expiry, pushed back while the session is used, never past created_at + the absolute limit
    expires_at      timestamptz NOT NULL,
    client          text NOT NULL DEFAULT '' CHECK (length(client) <= 100)
);
CREATE INDEX web_sessions_account ON web_sessions (account_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- "Mot de passe oublié": a one-time link sent by e-mail, valid a short time, used at most once.
CREATE TABLE password_resets (
    token_sha256    text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX password_resets_account ON password_resets (account_id);
CREATE INDEX password_resets_expires ON password_resets (expires_at);

-- The dashboard's "envois en cours": an account's unfinished sends without reading its whole history.
CREATE INDEX sends_account_unfinished ON sends (account_id, created_at DESC)
    WHERE status IN ('scheduled', 'running', 'paused');
