-- 0023 — the recording line's places for unknown callers (issue 17).
--
-- While the line's guess budget is spent (VOCALCAST_IVR_GLOBAL_FAILURES_PER_MIN), at most
-- VOCALCAST_IVR_UNKNOWN_CALLS_WHEN_SPENT calls from unknown callers (never seen typing a right code, or
-- hidden) may be checking codes at once, every engine together: one row per such call, claimed under an
-- advisory lock. A row is a lease renewed at each code the call types and removed when the call stops
-- checking codes; the lease of a call whose engine crashed runs out, and its place comes back. No caller
-- number is kept: the engine decides who is unknown before it claims.
CREATE TABLE ivr_checking_calls (
    call         text PRIMARY KEY CHECK (length(call) BETWEEN 1 AND 64),
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
