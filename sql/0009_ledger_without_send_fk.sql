-- 0009 — the credit ledger keeps no foreign key to sends (an early 0005 had one): the ledger is the
-- account's history and outlives anything it mentions; credit movements are also made by the account
-- primitives for ids the sends table never saw (operator corrections).
ALTER TABLE credit_ledger DROP CONSTRAINT IF EXISTS credit_ledger_send_fk;
