-- 0012 — group memberships: the rules of 0004's two foreign keys, checked once per statement.
--
-- A 100,000-row contacts import adds 100,000 memberships. A foreign key checks each new row with a query
-- of its own (executor start, index lookup, row lock, executor end: ~4 µs), and group_members had two:
-- 0.8 s of the import's 3 s of PostgreSQL time (issue 14). The triggers below keep the same rules —
--   * a membership's contact is a contact of its account, its group a group of its account (23503);
--   * deleting a contact or a group deletes its memberships (ON DELETE CASCADE);
--   * TRUNCATE of contacts or contact_groups empties group_members (TRUNCATE ... CASCADE);
-- and take the same row locks (FOR KEY SHARE on every parent row a statement's memberships name, so the
-- parent cannot be deleted before the membership commits), without a query per row.
--
-- Each check is one scan per account the statement touches, with the keys as a constant array
-- (id = ANY ('{...}'), built with format): no join the planner could turn around, and whatever plan the
-- statistics lead to — the keys as an index condition, or the account's rows filtered through a hash of
-- them — it reads each key or each of the account's rows once. (The same array as a parameter is
-- searched element by element for every row: 100,000 keys against 100,000 stale-statistics rows took
-- 20 s. And a plan chosen when the table held three contacts is cached by the session.) Never a scan
-- of the table or of another account's rows: the SET clauses keep the planner on the indexes (jit = off:
-- the disabled plans' costs would otherwise reach the JIT threshold).
--
-- Isolation: a foreign key's cascade finds memberships committed after a REPEATABLE READ transaction's
-- snapshot (and then fails with a serialization error); a trigger cannot see them, so deleting a
-- contact or a group outside READ COMMITTED (the only level vocalcast uses) is refused instead of
-- possibly leaving a membership behind.

ALTER TABLE group_members
    DROP CONSTRAINT group_members_account_id_group_id_fkey,
    DROP CONSTRAINT group_members_account_id_contact_id_fkey;

-- New or changed memberships: their contacts and groups exist in their account, locked FOR KEY SHARE.
CREATE FUNCTION group_members_check_parents() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
DECLARE
    named record;
    locked bigint;
BEGIN
    FOR named IN
        SELECT account_id, array_agg(DISTINCT contact_id) AS contact_ids,
               array_agg(DISTINCT group_id) AS group_ids
        FROM changed_members GROUP BY account_id
    LOOP
        EXECUTE format('SELECT FROM contacts WHERE account_id = %L AND id = ANY (%L::bigint[]) FOR KEY SHARE',
                       named.account_id, named.contact_ids);
        GET DIAGNOSTICS locked = ROW_COUNT;
        IF locked <> cardinality(named.contact_ids) THEN
            RAISE EXCEPTION 'insert or update on table "group_members" violates foreign key constraint "group_members_account_id_contact_id_fkey"'
                USING ERRCODE = 'foreign_key_violation', TABLE = 'group_members',
                      CONSTRAINT = 'group_members_account_id_contact_id_fkey',
                      DETAIL = 'A membership''s contact is not a contact of the membership''s account.';
        END IF;
        EXECUTE format('SELECT FROM contact_groups WHERE account_id = %L AND id = ANY (%L::bigint[]) FOR KEY SHARE',
                       named.account_id, named.group_ids);
        GET DIAGNOSTICS locked = ROW_COUNT;
        IF locked <> cardinality(named.group_ids) THEN
            RAISE EXCEPTION 'insert or update on table "group_members" violates foreign key constraint "group_members_account_id_group_id_fkey"'
                USING ERRCODE = 'foreign_key_violation', TABLE = 'group_members',
                      CONSTRAINT = 'group_members_account_id_group_id_fkey',
                      DETAIL = 'A membership''s group is not a group of the membership''s account.';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- (A trigger with transition tables takes one event: one for INSERT, one for UPDATE.)
CREATE TRIGGER group_members_parents_on_insert AFTER INSERT ON group_members
    REFERENCING NEW TABLE AS changed_members
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_check_parents();
CREATE TRIGGER group_members_parents_on_update AFTER UPDATE ON group_members
    REFERENCING NEW TABLE AS changed_members
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_check_parents();

-- Deleted contacts or groups take their memberships with them.
CREATE FUNCTION group_members_cascade() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
DECLARE
    deleted record;
BEGIN
    FOR deleted IN SELECT account_id, array_agg(id) AS ids FROM gone GROUP BY account_id LOOP
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'deleting from "%" needs READ COMMITTED (its memberships are deleted by a trigger)',
                    TG_TABLE_NAME
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'A trigger cannot see memberships committed after this transaction''s snapshot.';
        END IF;
        EXECUTE format('DELETE FROM group_members WHERE account_id = %L AND %I = ANY (%L::bigint[])',
                       deleted.account_id, CASE TG_TABLE_NAME WHEN 'contacts' THEN 'contact_id' ELSE 'group_id' END,
                       deleted.ids);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER group_members_of_deleted_contacts AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_cascade();
CREATE TRIGGER group_members_of_deleted_groups AFTER DELETE ON contact_groups
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_cascade();

-- TRUNCATE deletes no row one by one: it takes every membership with it.
CREATE FUNCTION group_members_truncate() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE group_members;
    RETURN NULL;
EXCEPTION WHEN object_in_use THEN
    -- group_members is truncated by the same statement (TRUNCATE contacts, group_members ...): a
    -- TRUNCATE cannot run inside it, a DELETE of what is left (nothing, by then) can.
    DELETE FROM group_members;
    RETURN NULL;
END
$$;

CREATE TRIGGER group_members_of_truncated_contacts AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_truncate();
CREATE TRIGGER group_members_of_truncated_groups AFTER TRUNCATE ON contact_groups
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_truncate();

-- A membership's parents keep their keys (a foreign key allowed moving an unreferenced contact or group
-- to another account; nothing does, and refusing it always needs no look at group_members).
CREATE FUNCTION group_members_parent_keys_kept() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'the account and id of a row of "%" never change', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
END
$$;

CREATE TRIGGER contacts_keys_kept BEFORE UPDATE OF account_id, id ON contacts
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION group_members_parent_keys_kept();
CREATE TRIGGER contact_groups_keys_kept BEFORE UPDATE OF account_id, id ON contact_groups
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION group_members_parent_keys_kept();
