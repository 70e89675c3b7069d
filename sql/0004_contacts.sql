-- 0004 — contacts, contact groups and their members (gestion des contacts, envoi à un groupe).

-- Search and sort keys. nom_key, prenom_key, societe_key and contact_groups.name_key hold the field
-- in lower case without accents ("Hélène" → "helene"), written by the store (engine.store.contacts
-- .search_key) on every insert and update; search words are folded by the same function. They are
-- COLLATE "C" (byte order), so:
--   * a prefix search is a plain range, key >= 'dup' AND key < 'dup' || U+10FFFF, that a btree
--     answers whatever the database locale, with the word as an ordinary parameter;
--   * the same index gives the listing order, so a page is an index range plus LIMIT (keyset).
-- Why not lower()/unaccent expression indexes: computing the fold in SQL costs about 1.5 µs a field,
-- 0.6 s on a 100,000-row import, and a stale-statistics plan that filters on it costs a second; the
-- keys are computed in the import's worker thread instead. Why not pg_trgm: prefix search on three
-- short fields and the number is what the contacts page needs, and plain btrees cost the import little.

-- A contact: only the number is mandatory; the other fields are '' when unknown (never NULL, so the
-- keys need no NULL ordering). One contact per number and account: an import that meets an existing
-- number updates that contact. The primary key is (account_id, id): every query names the account,
-- and group_members' composite foreign key needs exactly that unique pair.
CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    societe         text NOT NULL DEFAULT '' CHECK (length(societe) <= 100),
    nom             text NOT NULL DEFAULT '' CHECK (length(nom) <= 100),
    prenom          text NOT NULL DEFAULT '' CHECK (length(prenom) <= 100),
    societe_key     text COLLATE "C" NOT NULL DEFAULT '',
    nom_key         text COLLATE "C" NOT NULL DEFAULT '',
    prenom_key      text COLLATE "C" NOT NULL DEFAULT '',
    e164            text COLLATE "C" NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    number_type     text NOT NULL
                    CHECK (number_type IN ('mobile', 'fixed', 'voip', 'overseas', 'international')),
    is_mobile       boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id),
    -- also the number search (prefix range on e164) and the "by number" listing order
    CONSTRAINT contacts_number UNIQUE (account_id, e164),
    -- a key is empty exactly when its field is (the store fills both)
    CHECK ((societe = '') = (societe_key = '') AND (nom = '') = (nom_key = '')
           AND (prenom = '') = (prenom_key = ''))
);
-- Listing by name (nom, prénom, id: the keyset order) and prefix search on nom.
CREATE INDEX contacts_by_name ON contacts (account_id, nom_key, prenom_key, id);
-- Prefix search on prénom.
CREATE INDEX contacts_by_prenom ON contacts (account_id, prenom_key);
-- Listing by société (keyset order) and prefix search on société.
CREATE INDEX contacts_by_societe ON contacts (account_id, societe_key, id);

-- A group of contacts. Names are unique per account whatever their case and accents (name_key).
CREATE TABLE contact_groups (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 60 AND name = btrim(name)),
    name_key        text COLLATE "C" NOT NULL CHECK (name_key <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT contact_groups_name UNIQUE (account_id, name_key)
);

-- Membership. The composite foreign keys make a member of another account's group impossible, whatever
-- the store does. Deleting a group deletes its memberships, never its contacts.
CREATE TABLE group_members (
    account_id      uuid NOT NULL,
    group_id        bigint NOT NULL,
    contact_id      bigint NOT NULL,
    -- (group_id, contact_id): a group's members, and counting them, read this key alone
    PRIMARY KEY (group_id, contact_id),
    FOREIGN KEY (account_id, group_id) REFERENCES contact_groups (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, contact_id) REFERENCES contacts (account_id, id) ON DELETE CASCADE
);
-- A contact's groups, and the cascade when a contact is deleted.
CREATE INDEX group_members_contact ON group_members (contact_id);
