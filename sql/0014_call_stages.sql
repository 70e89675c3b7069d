-- 0014_call_stages.sql — where each call is, so that a restarted engine carries it on (issue 16).
--
-- The call flow announces every stage it enters (engine/domain/callstage.py). The engine keeps the last
-- one in three places: on the channel (CDR(userfield), readable through ARI while the call lasts), in
-- Asterisk's CDR (cdr_pgsql writes the userfield into asterisk_cdr at hang-up: it survives a kill -9 of
-- the engine) and here, written in batches (it survives the channel).
ALTER TABLE attempts
    ADD COLUMN stage    text,         -- the last stage announced (a Stage value)
    ADD COLUMN stage_at timestamptz,  -- when the call entered it
    ADD COLUMN snapshot text,         -- StageSnapshot.encode(): what resuming the call needs
    -- Who ended a call nobody followed (engine/domain/unobserved.py): 'ours' (Asterisk or our host
    -- failed: the recipient got its attempt back), 'callee', or 'unknown'.
    ADD COLUMN cut      text CHECK (cut IN ('ours', 'callee', 'unknown'));

-- A recipient whose call we cut (not the callee) is called again without using one of its attempts.
ALTER TABLE send_recipients DROP CONSTRAINT IF EXISTS send_recipients_wait_reason_check;
ALTER TABLE send_recipients
    ADD CONSTRAINT send_recipients_wait_reason_check
    CHECK (wait_reason IN ('no_route', 'trunk_failure', 'our_cut'));
