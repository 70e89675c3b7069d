-- 0021 — several engines on one PostgreSQL (issue 19).
--
-- Each engine process is a node: it writes its heartbeat here; a node silent for longer than
-- VOCALCAST_NODE_DEAD_AFTER_S is declared dead by another, which raises its epoch (fencing) and takes
-- its open attempts over. Every claim and every originate of a node checks its epoch in the same
-- transaction: a node that was only frozen cannot call anyone once it wakes. `draining`: the node claims
-- nothing new and finishes its calls (`vocalcast node drain`).
CREATE TABLE nodes (
    name            text PRIMARY KEY,
    epoch           bigint NOT NULL DEFAULT 1 CHECK (epoch >= 1),
    app             text NOT NULL,           -- its Stasis application on the shared Asterisk
    last_seen       timestamptz NOT NULL DEFAULT now(),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    draining        boolean NOT NULL DEFAULT false,
    taken_over_by   text,                    -- set when another node declared it dead
    taken_over_at   timestamptz
);

-- Carrier limits held for the whole cluster (VOCALCAST_CLUSTER=1): each trunk's pace as a token bucket
-- every node takes from, and the pause its carrier asked for (an open breaker, a Retry-After) that every
-- node respects.
CREATE TABLE trunk_pace (
    trunk         text PRIMARY KEY,
    tokens        double precision NOT NULL,
    refilled_at   timestamptz NOT NULL DEFAULT now(),
    paused_until  timestamptz,
    pause_reason  text
);

-- The legs each node has on each trunk (its calls, their transfer legs): a trunk's channels in use are
-- their sum over the nodes. A dead node's rows go once the node that took it over counts the calls it
-- adopted. wanted_at: the last time the node asked for more than it got — while another node wants, no
-- node holds more than its fair share of the trunk's channels (the one that polls most never starves
-- the others).
CREATE TABLE trunk_legs (
    trunk      text NOT NULL,
    node       text NOT NULL,
    legs       integer NOT NULL DEFAULT 0 CHECK (legs >= 0),
    wanted_at  timestamptz,
    PRIMARY KEY (trunk, node)
);
