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

-- The daily spending cap: at most this many credits a day (Europe/Paris) for the account's calls; NULL
-- follows VOCALCAST_DAILY_SPEND_CAP, 0 means no cap. When the day's spending (credits consumed, outcomes
-- not yet settled that consume one, calls in flight) reaches it, the dialer places none of the account's
-- calls until the next day: their recipients wait with the reason 'daily_cap', shown in the report.
-- 'no_international': a recipient abroad left out at dial time, the account having lost the option.
ALTER TABLE accounts ADD COLUMN daily_spend_cap integer CHECK (daily_spend_cap >= 0);

ALTER TABLE send_recipients DROP CONSTRAINT IF EXISTS send_recipients_wait_reason_check;
ALTER TABLE send_recipients
    ADD CONSTRAINT send_recipients_wait_reason_check
    CHECK (wait_reason IN ('no_route', 'trunk_failure', 'our_cut', 'outside_hours', 'holiday',
                           'cap_reached', 'refused', 'stop_listed', 'no_consent', 'daily_cap',
                           'no_international'));

-- Transfers (touche 9): the account's own longest transferred conversation (NULL: VOCALCAST_TRANSFER_MAX_S,
-- which also bounds it), read by the dialer at dial time.
ALTER TABLE accounts ADD COLUMN transfer_max_s double precision CHECK (transfer_max_s >= 0);
-- The account's own cap on simultaneous transfers (NULL: VOCALCAST_ACCOUNT_MAX_TRANSFERS); a press of 9
-- beyond it gets the apology, as when the trunk is full.
ALTER TABLE accounts ADD COLUMN max_transfers integer CHECK (max_transfers >= 0);
-- Credits charged for the transfer's started minutes beyond the first (VOCALCAST_TRANSFER_MINUTE_CREDITS
-- each); NULL until the transfer is billed.
ALTER TABLE attempts ADD COLUMN transfer_credits integer CHECK (transfer_credits >= 0);
-- The dialer looks for transfers to bill every second: only the few not billed yet.
CREATE INDEX attempts_transfer_unbilled ON attempts (ended_at) WHERE transfer_s > 0 AND transfer_credits IS NULL;
