-- 0007 — credits of finished calls are settled in batches, not one transaction per call.
--
-- Every call of a send used to lock the send's row and the account's row to move its one credit,
-- so the calls of a big send queued behind each other (measured in bench/dialer.py). A final outcome
-- now only marks its recipient; the dialer settles the unsettled ones of a send about once a second
-- in one transaction (one consume entry and one release entry in the ledger per batch).
ALTER TABLE send_recipients ADD COLUMN settled boolean NOT NULL DEFAULT false;
CREATE INDEX send_recipients_unsettled ON send_recipients (send_id) WHERE state = 'done' AND NOT settled;
