-- 0015 — logins an attacker cannot bend: a throttle that counts before it checks, trusted addresses.
--
-- login_throttle: one row per key ("pair:<login>|<address>", "account:<login>", "client:<address>"),
-- locked while a login takes its slot, so parallel guesses cannot all pass the check before any failure
-- is recorded. `failures` counts the window's failed logins, `pending` the logins being checked now
-- (each holds a slot: a failure keeps it, a success gives it back); `strikes` makes the next window
-- longer each time one ended exhausted.
CREATE TABLE login_throttle (
    key             text PRIMARY KEY CHECK (length(key) <= 400),
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    pending         integer NOT NULL DEFAULT 0 CHECK (pending >= 0),
    window_start    timestamptz NOT NULL DEFAULT now(),
    strikes         integer NOT NULL DEFAULT 0 CHECK (strikes >= 0)
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);

-- An (account, address) pair that logged in successfully: for VOCALCAST_LOGIN_TRUSTED_DAYS it keeps its
-- own budget, so a stranger's wrong guesses never lock a customer out of their usual address.
CREATE TABLE login_trusted (
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client          text NOT NULL CHECK (length(client) <= 100),
    last_success_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, client)
);
CREATE INDEX login_trusted_last ON login_trusted (last_success_at);

-- Unauthenticated refusals are recorded at most a few a minute per client (see the intake service);
-- the purge job deletes old rows of the tables that grow from unauthenticated traffic.
CREATE INDEX rate_events_at ON rate_events (at);

-- Addresses an account's machine interfaces (http.php, the API) are limited to, when it has any: its
-- own servers. No row: from anywhere, as before. The pages stay open to the customer's browser.
CREATE TABLE account_clients (
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    network         cidr NOT NULL,
    PRIMARY KEY (account_id, network)
);
