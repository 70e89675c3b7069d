-- 0022 — abuse limits, the gaps left (issue 17).
--
-- Transfers (touche 9) held per account for the whole cluster: an attempt whose transfer leg is placed
-- holds one of its account's simultaneous transfers (accounts.max_transfers, else
-- VOCALCAST_ACCOUNT_MAX_TRANSFERS) until the leg ends; an ended attempt never holds one (an engine that
-- died with a transfer up frees it when its attempt is taken over and ended). Set and counted under the
-- account's advisory lock, so two engines cannot both take the last place.
ALTER TABLE attempts ADD COLUMN transfer_held boolean NOT NULL DEFAULT false;
CREATE INDEX attempts_transfer_held ON attempts (send_id) WHERE transfer_held;

-- A greeting recorded by phone waits for its customer's confirmation on the site (a personal code can be
-- guessed or overheard: whoever typed it must not choose what the account's sends play first); until
-- then the account's default greeting stays as it was. Cleared when confirmed or dismissed.
ALTER TABLE messages ADD COLUMN greeting_pending boolean NOT NULL DEFAULT false;
