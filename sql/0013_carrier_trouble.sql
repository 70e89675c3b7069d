-- 0013 — dialing through carrier trouble.
--
-- Trunks: qualify can be switched off (SBCs that ignore OPTIONS), a trunk may be kept for failover only,
-- limited to routes (number types or E.164 prefixes), matched on more addresses, reached through an
-- outbound proxy, and registered with `line` (inbound calls matched by our contact's line parameter).
-- Only A-law and µ-law are offered: Asterisk plays our files in those without translators.
ALTER TABLE trunks
    ADD COLUMN qualify boolean NOT NULL DEFAULT true,
    ADD COLUMN failover_only boolean NOT NULL DEFAULT false,
    ADD COLUMN routes text[] NOT NULL DEFAULT '{}'
        CHECK (array_to_string(routes, ',') ~ '^((mobile|fixed|overseas|\+[1-9][0-9]{0,14})(,|$))*$'),
    ADD COLUMN identify text[] NOT NULL DEFAULT '{}'
        CHECK (array_to_string(identify, ',') ~ '^[A-Za-z0-9.:/,-]*$'),
    ADD COLUMN outbound_proxy text CHECK (outbound_proxy ~ '^sips?:[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(;lr)?$'),
    ADD COLUMN registration_line boolean NOT NULL DEFAULT false;

UPDATE trunks SET codecs = 'alaw,ulaw' WHERE codecs ~ '(g722|opus)';

-- A recipient waiting for a trunk: no healthy trunk may carry its number (no_route), or the trunk it was
-- given failed on the trunk's side (trunk_failure). Such a wait never uses one of the send's attempts;
-- trunk_wait_since bounds it (VOCALCAST_TRUNK_WAIT_MAX_S), after which the recipient ends as congestion.
ALTER TABLE send_recipients
    ADD COLUMN wait_reason text CHECK (wait_reason IN ('no_route', 'trunk_failure')),
    ADD COLUMN trunk_wait_since timestamptz;

-- An attempt that ended through the trunk's fault (a 503, no answer at all, a refused originate):
-- kept for the record, never counted as one of the recipient's attempts.
ALTER TABLE attempts ADD COLUMN trunk_failure boolean NOT NULL DEFAULT false;

-- Each node's view of each trunk, written by its dialer every few seconds: `vocalcast trunk list`
-- shows it, and a node can see the pauses another node's carrier asked for.
CREATE TABLE trunk_health (
    trunk       text NOT NULL,
    node        text NOT NULL,
    usable      boolean NOT NULL,
    reason      text,
    breaker     text NOT NULL CHECK (breaker IN ('closed', 'open', 'half_open')),
    open_until  timestamptz,
    quality     text NOT NULL DEFAULT 'ok' CHECK (quality IN ('ok', 'alarm', 'cut')),
    legs        integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trunk, node)
);

-- A send the engine paused by itself because no trunk is configured at all (the operator removed the
-- last one): it resumes by itself when a trunk is back. A customer's pause has no reason here.
ALTER TABLE sends ADD COLUMN pause_reason text CHECK (pause_reason IN ('no_trunk'));
