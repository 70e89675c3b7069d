-- 0020 — abuse limits (issue 17): the recording line's known callers.
--
-- A caller number that typed a right personal code. While every caller together spends the line's
-- guess budget (VOCALCAST_IVR_GLOBAL_FAILURES_PER_MIN), code checks slow down for the other numbers
-- only: a customer calling from the number it used before keeps its pace, nobody is locked out.
-- Rows unseen for VOCALCAST_IVR_KNOWN_CALLER_DAYS are purged by the IVR's housekeeping.
CREATE TABLE ivr_known_callers (
    caller          text PRIMARY KEY CHECK (length(caller) BETWEEN 1 AND 64),
    last_login_at   timestamptz NOT NULL DEFAULT now()
);
