-- 0003 — the recording IVR's defence against personal-code guessing.
--
-- Kept in PostgreSQL, not in memory, so that a lockout survives an engine restart and every engine
-- process sees the same failures. Times come from the database clock (now()), the one clock all
-- processes share.

-- One row per wrong personal code typed on the recording number. caller is the caller number as
-- the IVR keys it (E.164 when it could tell, 'anonymous' for a hidden number). Rows older than the
-- lockout window are purged by the IVR.
CREATE TABLE ivr_code_failures (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    caller          text NOT NULL CHECK (length(caller) BETWEEN 1 AND 64),
    at              timestamptz NOT NULL DEFAULT now()
);
-- "failures of this caller within the window" (the lockout rule)
CREATE INDEX ivr_code_failures_caller_at ON ivr_code_failures (caller, at);
-- "failures of everyone in the last minute" (the global slow-down) and the purge
CREATE INDEX ivr_code_failures_at ON ivr_code_failures (at);

-- A caller number that typed too many wrong codes: every call from it is refused until blocked_until,
-- without any code check. Expired rows are harmless and purged with the failures.
CREATE TABLE ivr_blocked_callers (
    caller          text PRIMARY KEY CHECK (length(caller) BETWEEN 1 AND 64),
    blocked_at      timestamptz NOT NULL DEFAULT now(),
    blocked_until   timestamptz NOT NULL,
    failures        integer NOT NULL CHECK (failures > 0),  -- wrong codes in the window that blocked it
    CHECK (blocked_until > blocked_at)
);
