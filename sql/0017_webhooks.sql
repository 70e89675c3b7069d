-- 0017 — signed status webhooks: per-account settings, a per-send override, and the outbox the
-- delivery worker reads (engine/services/webhooks).
--
-- The outbox rows are written by triggers, in the SAME transaction as the outcome they report: a rolled
-- back outcome leaves no event, a committed one always has its event (at-least-once delivery starts here).
-- The dialer's SQL (engine/store/attempts.py) is not touched. A trigger takes no lock besides the
-- outbox insert itself: the sequence number comes from a PostgreSQL sequence (nextval never waits and
-- never rolls back), so an outcome never waits on a webhook.

-- The account's endpoint. secret: the HMAC-SHA256 key, kept as-is (it must be usable to sign; see the
-- README, "Webhooks"): only the engine's role reads this table, and it is never logged nor shown again.
CREATE TABLE webhook_settings (
    account_id      uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    url             text CHECK (url ~ '^https?://' AND length(url) <= 2000),   -- NULL: no webhook
    events          text[] NOT NULL DEFAULT '{send.started,send.completed,attempt.final,recipient.final,optout.added}',
    secret          text NOT NULL,
    disabled_at     timestamptz,      -- the endpoint answered 410 Gone: nothing more is sent to it
    disabled_reason text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One send's own endpoint and events, replacing the account's for that send (events '{}': none at all).
CREATE TABLE send_webhooks (
    send_id         uuid PRIMARY KEY REFERENCES sends (id) ON DELETE CASCADE,
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    events          text[] NOT NULL,
    disabled_at     timestamptz,
    disabled_reason text
);

-- Shared by every send: increasing within a send (and overall), with gaps.
CREATE SEQUENCE webhook_event_seq;

-- The outbox, one row per event and endpoint; also the delivery log (status, tries, last answer).
-- object: the reported object's state when the event happened (the row, and what the API shows with it);
-- body: the JSON sent, rendered once at the first try so that every retry sends the same bytes.
CREATE TABLE webhook_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    send_id         uuid,             -- no foreign key: the log outlives what it mentions
    type            text NOT NULL CHECK (type IN ('send.started', 'send.completed', 'attempt.final',
                                                  'recipient.final', 'optout.added', 'webhook.test')),
    sequence        bigint NOT NULL DEFAULT nextval('webhook_event_seq'),
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    object          jsonb NOT NULL,
    url             text NOT NULL,
    target          text NOT NULL CHECK (target IN ('account', 'send')),
    body            text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'dropped')),
    tries           integer NOT NULL DEFAULT 0,
    queued_at       timestamptz NOT NULL DEFAULT clock_timestamp(),  -- the retry window starts here
    next_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_status     integer,          -- HTTP status of the last try (NULL: no answer)
    last_error      text,
    last_latency_ms integer,
    delivered_at    timestamptz
);
CREATE INDEX webhook_events_due ON webhook_events (next_at) WHERE status = 'pending';
CREATE INDEX webhook_events_account ON webhook_events (account_id, occurred_at DESC);

-- Every try of every event: when, the answer (or the error), how long it took.
CREATE TABLE webhook_deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    status      integer,
    error       text,
    latency_ms  integer NOT NULL
);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id, at);

-- The completion e-mail (optional, per account): the send's summary and a link to its report, queued
-- with the send's end like its webhook events, sent by the same worker through the mail relay.
CREATE TABLE account_notifications (
    account_id       uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    completion_email boolean NOT NULL DEFAULT false
);
CREATE TABLE completion_emails (
    send_id     uuid PRIMARY KEY REFERENCES sends (id) ON DELETE CASCADE,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    tries       integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at     timestamptz
);
CREATE INDEX completion_emails_due ON completion_emails (next_at) WHERE status = 'pending';

-- Whether anybody wants an event: the triggers ask first, so that an outcome nobody listens to costs
-- one or two primary-key lookups and never the building of its object.
CREATE FUNCTION webhook_wanted(p_account uuid, p_send uuid, p_type text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM send_webhooks WHERE send_id = p_send)
        THEN EXISTS (SELECT 1 FROM send_webhooks WHERE send_id = p_send AND disabled_at IS NULL
                     AND p_type = ANY (events))
        ELSE EXISTS (SELECT 1 FROM webhook_settings WHERE account_id = p_account AND url IS NOT NULL
                     AND disabled_at IS NULL AND p_type = ANY (events))
    END
$$;

-- Queue one event for the endpoint that wants it: the send's own when it has one, else the account's.
-- Returns the event id, NULL when nobody wants it. Usable by any later event source (opt-outs).
CREATE FUNCTION webhook_enqueue(p_account uuid, p_send uuid, p_type text, p_object jsonb)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_url text;
    v_target text;
    v_id uuid;
BEGIN
    IF p_send IS NOT NULL THEN
        SELECT CASE WHEN disabled_at IS NULL AND p_type = ANY (events) THEN url END, 'send'
          INTO v_url, v_target FROM send_webhooks WHERE send_id = p_send;
    END IF;
    IF v_target IS NULL THEN
        SELECT url, 'account' INTO v_url, v_target FROM webhook_settings
         WHERE account_id = p_account AND disabled_at IS NULL AND p_type = ANY (events);
    END IF;
    IF v_url IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_events (account_id, send_id, type, object, url, target)
    VALUES (p_account, p_send, p_type, p_object, v_url, v_target) RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- A send's state as the API shows it: the row, its message references and its progress.
CREATE FUNCTION webhook_send_object(s sends) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(s)
        || jsonb_build_object(
            'message_ref', (SELECT ref FROM messages WHERE id = s.message_id),
            'greeting_ref', (SELECT ref FROM messages WHERE id = s.greeting_message_id),
            'progress', (
                SELECT jsonb_build_object(
                    'total', count(*),
                    'done', count(*) FILTER (WHERE r.state = 'done'),
                    'calling', count(*) FILTER (WHERE r.state = 'calling'),
                    'pending', count(*) FILTER (WHERE r.state = 'pending'),
                    'cancelled', count(*) FILTER (WHERE r.state = 'cancelled'),
                    'attempts', coalesce(sum(r.attempts), 0),
                    'outcomes', coalesce((
                        SELECT jsonb_object_agg(o.outcome, o.n) FROM (
                            SELECT outcome, count(*) AS n FROM send_recipients
                             WHERE send_id = s.id AND state = 'done' GROUP BY outcome) o), '{}'::jsonb))
                FROM send_recipients r WHERE r.send_id = s.id))
$$;

-- send.started: created running, or a scheduled send whose time came. send.completed: completed or
-- cancelled (the object's status says which). Deferred to the commit: a send's recipients are stored
-- after its row, and a per-send endpoint set in the creating transaction is seen.
CREATE FUNCTION webhook_on_send() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
    v_now sends;
BEGIN
    IF NEW.status = 'running' AND (TG_OP = 'INSERT' OR OLD.status = 'scheduled') THEN
        v_type := 'send.started';
    ELSIF NEW.status IN ('completed', 'cancelled')
          AND (TG_OP = 'INSERT' OR OLD.status NOT IN ('completed', 'cancelled')) THEN
        v_type := 'send.completed';
    ELSE
        RETURN NULL;
    END IF;
    IF v_type = 'send.completed' AND EXISTS (SELECT 1 FROM account_notifications
                                             WHERE account_id = NEW.account_id AND completion_email) THEN
        INSERT INTO completion_emails (send_id, account_id) VALUES (NEW.id, NEW.account_id)
        ON CONFLICT (send_id) DO NOTHING;
    END IF;
    IF NOT webhook_wanted(NEW.account_id, NEW.id, v_type) THEN
        RETURN NULL;
    END IF;
    -- The row as it is at commit (counters settled since), with the status of this event.
    SELECT * INTO v_now FROM sends WHERE id = NEW.id;
    IF v_now.id IS NULL THEN
        RETURN NULL;
    END IF;
    v_now.status := NEW.status;
    PERFORM webhook_enqueue(NEW.account_id, NEW.id, v_type, webhook_send_object(v_now));
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER webhook_send_events AFTER INSERT OR UPDATE OF status ON sends
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION webhook_on_send();

-- recipient.final: a recipient reaching its final outcome (state 'done'), with its calls.
CREATE FUNCTION webhook_on_recipient() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_account uuid := (SELECT account_id FROM sends WHERE id = NEW.send_id);
BEGIN
    IF NOT webhook_wanted(v_account, NEW.send_id, 'recipient.final') THEN
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(
        v_account,
        NEW.send_id,
        'recipient.final',
        to_jsonb(NEW) || jsonb_build_object('attempts_detail', (
            SELECT coalesce(jsonb_agg(jsonb_build_object('id', a.id, 'attempt_no', a.attempt_no,
                'trunk', a.trunk, 'outcome', a.outcome, 'cause', a.cause, 'sip_code', a.sip_code,
                'created_at', a.created_at, 'ended_at', a.ended_at, 'ring_s', a.ring_s, 'talk_s', a.talk_s,
                'transfer_outcome', a.transfer_outcome, 'transfer_s', a.transfer_s, 'demo', a.demo)
                ORDER BY a.created_at), '[]'::jsonb)
            FROM attempts a WHERE a.recipient_id = NEW.id)));
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_recipient_events AFTER UPDATE OF state ON send_recipients
    FOR EACH ROW WHEN (NEW.state = 'done' AND OLD.state IS DISTINCT FROM 'done')
    EXECUTE FUNCTION webhook_on_recipient();

-- attempt.final: a call's outcome (state 'ended'), with its recipient's id and number.
CREATE FUNCTION webhook_on_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_account uuid := (SELECT account_id FROM sends WHERE id = NEW.send_id);
BEGIN
    IF NOT webhook_wanted(v_account, NEW.send_id, 'attempt.final') THEN
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(
        v_account,
        NEW.send_id,
        'attempt.final',
        to_jsonb(NEW) || jsonb_build_object(
            'number', (SELECT e164 FROM send_recipients WHERE id = NEW.recipient_id)));
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_attempt_ended AFTER UPDATE OF state ON attempts
    FOR EACH ROW WHEN (NEW.state = 'ended' AND OLD.state <> 'ended')
    EXECUTE FUNCTION webhook_on_attempt();
CREATE TRIGGER webhook_attempt_inserted_ended AFTER INSERT ON attempts
    FOR EACH ROW WHEN (NEW.state = 'ended')
    EXECUTE FUNCTION webhook_on_attempt();

-- optout.added: a number added to an account's stop list (table account_stop_list, issue 18). That table
-- comes with another migration: webhook_watch_optouts() hooks it when it exists (here, and again from
-- any later migration that creates it), and says whether it did.
CREATE FUNCTION webhook_on_optout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT webhook_wanted(NEW.account_id, NULL, 'optout.added') THEN
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(NEW.account_id, NULL, 'optout.added', jsonb_build_object(
        'number', NEW.e164, 'number_hash', NEW.number_hash, 'source', NEW.source, 'added_at', NEW.added_at));
    RETURN NULL;
END $$;

CREATE FUNCTION webhook_watch_optouts() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('account_stop_list') IS NULL THEN
        RETURN false;
    END IF;
    DROP TRIGGER IF EXISTS webhook_optout_events ON account_stop_list;
    CREATE TRIGGER webhook_optout_events AFTER INSERT ON account_stop_list
        FOR EACH ROW EXECUTE FUNCTION webhook_on_optout();
    RETURN true;
END $$;

SELECT webhook_watch_optouts();
