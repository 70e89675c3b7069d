-- 0010 — direct voicemail deposit, where the operator offers it: the number is sent with a prefix
-- and/or a header the operator defines, and its platform answers as the mailbox (the phone does not
-- ring). Without either, a voicemail drop uses answering-machine mode on a normal call.
ALTER TABLE trunks
    ADD COLUMN deposit_prefix text CHECK (deposit_prefix ~ '^[0-9*#+]{1,16}$'),
    ADD COLUMN deposit_header text CHECK (deposit_header ~ '^[A-Za-z][A-Za-z0-9-]{0,63}: ?[ -~]{1,128}$');
