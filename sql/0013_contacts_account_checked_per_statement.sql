-- 0013 — contacts: the account foreign key of 0004, checked once per statement (as group_members' in 0012).
--
-- A 100,000-row import inserts 100,000 contacts of one account, and the foreign key checked each row
-- with a query of its own: 0.25 s of the import's ~2 s of PostgreSQL time (issue 14), all to find the
-- same account row 100,000 times. The triggers below keep its rules —
--   * a contact's account exists (23503), and is locked FOR KEY SHARE until the contact commits;
--   * deleting an account deletes its contacts (ON DELETE CASCADE; their memberships follow, 0012);
--   * TRUNCATE of accounts empties contacts (TRUNCATE ... CASCADE);
--   * a contact's account never changes (0012's contacts_keys_kept), an account's id neither;
-- with one look at the accounts a statement's contacts name. As in 0012, deleting accounts outside READ
-- COMMITTED is refused: a trigger cannot see contacts committed after a REPEATABLE READ snapshot.

ALTER TABLE contacts DROP CONSTRAINT contacts_account_id_fkey;

-- New contacts: their accounts exist, locked FOR KEY SHARE.
CREATE FUNCTION contacts_check_account() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
DECLARE
    named uuid[];
    locked bigint;
BEGIN
    SELECT array_agg(DISTINCT account_id) INTO named FROM new_contacts;
    IF named IS NULL THEN
        RETURN NULL;
    END IF;
    -- (A constant array, as in 0012: a handful of keys, whatever the plan.)
    EXECUTE format('SELECT FROM accounts WHERE id = ANY (%L::uuid[]) FOR KEY SHARE', named);
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked <> cardinality(named) THEN
        RAISE EXCEPTION 'insert or update on table "contacts" violates foreign key constraint "contacts_account_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'contacts', CONSTRAINT = 'contacts_account_id_fkey',
                  DETAIL = 'A contact''s account does not exist.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_account_on_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_check_account();

-- Deleted accounts take their contacts with them.
CREATE FUNCTION contacts_of_deleted_accounts() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
DECLARE
    gone_ids uuid[];
BEGIN
    SELECT array_agg(id) INTO gone_ids FROM gone_accounts;
    IF gone_ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deleting from "accounts" needs READ COMMITTED (their contacts are deleted by a trigger)'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'A trigger cannot see contacts committed after this transaction''s snapshot.';
    END IF;
    EXECUTE format('DELETE FROM contacts WHERE account_id = ANY (%L::uuid[])', gone_ids);
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_of_deleted_accounts AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS gone_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_of_deleted_accounts();

-- TRUNCATE deletes no row one by one: it takes every contact with it (and, through 0012, every membership).
CREATE FUNCTION contacts_truncate() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE contacts;
    RETURN NULL;
EXCEPTION WHEN object_in_use THEN
    -- contacts is truncated by the same statement: a DELETE of what is left (nothing, by then).
    DELETE FROM contacts;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_of_truncated_accounts AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_truncate();

-- An account's id never changes (nothing does it; the foreign key allowed it for an account without contacts).
CREATE FUNCTION accounts_id_kept() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'the id of an account never changes' USING ERRCODE = 'foreign_key_violation', TABLE = 'accounts';
END
$$;

CREATE TRIGGER accounts_id_kept BEFORE UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION accounts_id_kept();
