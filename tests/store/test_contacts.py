"""Contacts, groups, memberships and a send's targets on the real PostgreSQL; isolation between accounts."""

from __future__ import annotations

import base64
from uuid import UUID

import pytest

from engine.domain import contacts as rules
from engine.errors import InvalidInput, NotFound
from engine.settings import Settings
from engine.store import Database
from engine.store import contacts as store
from engine.store import groups as groups_store
from engine.store import targets as targets_store
from engine.store.accounts import create_account


async def _account(db: Database, settings: Settings, email: str) -> UUID:
    new = await create_account(db, email, secret_key=settings.require("secret_key"))
    return new.account.id


@pytest.fixture
async def alice(db: Database, stack_settings: Settings) -> UUID:
    return await _account(db, stack_settings, "alice@example.fr")


@pytest.fixture
async def bob(db: Database, stack_settings: Settings) -> UUID:
    return await _account(db, stack_settings, "bob@example.fr")


async def _add(db: Database, account: UUID, phone: str, nom: str = "", prenom: str = "", **kw: object) -> int:
    contact = await store.create_contact(
        db, account, phone=phone, nom=nom, prenom=prenom, allow_international=False, **kw
    )
    return contact.id


# --- contacts -------------------------------------------------------------------------------------------


async def test_create_normalises_the_number_and_cleans_the_fields(db: Database, alice: UUID) -> None:
    contact = await store.create_contact(
        db,
        alice,
        phone="06.12.34.56.78",
        societe="  Mairie   de\tSaint-Denis ",
        nom="Hélène",
        prenom="",
        allow_international=False,
    )
    assert contact.e164 == "+33612345678"
    assert contact.number_type == "mobile"
    assert contact.is_mobile is True
    assert contact.societe == "Mairie de Saint-Denis"
    assert contact.nom == "Hélène"
    assert contact.groups == ()
    assert await store.get_contact(db, alice, contact.id) == contact

    overseas = await store.create_contact(db, alice, phone="0262 21 34 56", allow_international=False)
    assert (overseas.e164, overseas.number_type, overseas.is_mobile) == ("+262262213456", "overseas", False)


@pytest.mark.parametrize(
    ("phone", "code"),
    [
        ("0899 12 34 56", "premium"),
        ("06 12 34 56 7", "too_short"),
        ("0800 FLOWERS", "letters"),
        ("15", "emergency"),
    ],
)
async def test_create_refuses_bad_numbers_with_their_code(
    db: Database, alice: UUID, phone: str, code: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.create_contact(db, alice, phone=phone, allow_international=False)
    assert caught.value.code == code
    assert caught.value.message_fr
    assert await store.count_contacts(db, alice) == 0


async def test_international_numbers_need_the_account_option(db: Database, alice: UUID) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.create_contact(db, alice, phone="+44 20 7946 0958", allow_international=False)
    assert caught.value.code == "international"
    contact = await store.create_contact(db, alice, phone="+44 20 7946 0958", allow_international=True)
    assert (contact.e164, contact.number_type) == ("+442079460958", "international")


async def test_a_number_is_one_contact_per_account(db: Database, alice: UUID) -> None:
    await _add(db, alice, "0612345678", "Martin")
    with pytest.raises(InvalidInput) as caught:
        await _add(db, alice, "+33 6 12 34 56 78", "Durand")
    assert caught.value.code == "contact_exists"
    assert await store.count_contacts(db, alice) == 1


async def test_too_long_field_is_refused(db: Database, alice: UUID) -> None:
    with pytest.raises(InvalidInput) as caught:
        await _add(db, alice, "0612345678", "x" * (rules.FIELD_MAX_LENGTH + 1))
    assert caught.value.code == "field_too_long"
    assert "Nom" in caught.value.message_fr


async def test_update_changes_only_the_given_fields(db: Database, alice: UUID) -> None:
    clients = await groups_store.create_group(db, alice, "Clients")
    elus = await groups_store.create_group(db, alice, "Élus")
    contact_id = await _add(db, alice, "0612345678", "Martin", "Jean", group_ids=[clients.id])
    other_id = await _add(db, alice, "0698765432", "Durand")

    updated = await store.update_contact(db, alice, contact_id, prenom="Jeanne", allow_international=False)
    assert (updated.nom, updated.prenom, updated.e164) == ("Martin", "Jeanne", "+33612345678")
    assert [g.name for g in updated.groups] == ["Clients"]
    assert updated.updated_at >= updated.created_at

    updated = await store.update_contact(
        db, alice, contact_id, phone="01 72 36 01 70", group_ids=[elus.id], allow_international=False
    )
    assert (updated.e164, updated.number_type, updated.is_mobile) == ("+33172360170", "fixed", False)
    assert [g.name for g in updated.groups] == ["Élus"]
    assert (await groups_store.get_group(db, alice, clients.id)).member_count == 0

    with pytest.raises(InvalidInput) as caught:
        await store.update_contact(db, alice, other_id, phone="0172360170", allow_international=False)
    assert caught.value.code == "contact_exists"
    assert (await store.get_contact(db, alice, other_id)).e164 == "+33698765432"


async def test_delete_contact_removes_its_memberships_not_its_groups(db: Database, alice: UUID) -> None:
    group = await groups_store.create_group(db, alice, "Clients")
    contact_id = await _add(db, alice, "0612345678", group_ids=[group.id])
    await store.delete_contact(db, alice, contact_id)
    with pytest.raises(NotFound):
        await store.get_contact(db, alice, contact_id)
    with pytest.raises(NotFound):
        await store.delete_contact(db, alice, contact_id)
    assert (await groups_store.get_group(db, alice, group.id)).member_count == 0


# --- groups ---------------------------------------------------------------------------------------------


async def test_group_names_are_unique_whatever_case_and_accents(db: Database, alice: UUID) -> None:
    group = await groups_store.create_group(db, alice, "  Élus   municipaux ")
    assert group.name == "Élus municipaux"
    for name in ("élus municipaux", "ELUS MUNICIPAUX"):
        with pytest.raises(InvalidInput) as caught:
            await groups_store.create_group(db, alice, name)
        assert caught.value.code == "group_exists"
    assert (await groups_store.group_by_name(db, alice, "elus  MUNICIPAUX")).id == group.id
    with pytest.raises(InvalidInput) as caught:
        await groups_store.create_group(db, alice, "   ")
    assert caught.value.code == "group_name_invalid"


async def test_rename_and_delete_group_keep_the_contacts(db: Database, alice: UUID) -> None:
    clients = await groups_store.create_group(db, alice, "Clients")
    await groups_store.create_group(db, alice, "Fournisseurs")
    ids = [await _add(db, alice, f"06123456{i:02d}") for i in range(3)]
    assert await groups_store.add_members(db, alice, clients.id, ids) == 3
    assert await groups_store.add_members(db, alice, clients.id, ids[:1]) == 0  # already in

    renamed = await groups_store.rename_group(db, alice, clients.id, "Clients VIP")
    assert (renamed.name, renamed.member_count) == ("Clients VIP", 3)
    with pytest.raises(InvalidInput) as caught:
        await groups_store.rename_group(db, alice, clients.id, "fournisseurs")
    assert caught.value.code == "group_exists"

    await groups_store.delete_group(db, alice, clients.id)
    assert await store.count_contacts(db, alice) == 3
    assert [g.name for g in await groups_store.list_groups(db, alice)] == ["Fournisseurs"]
    with pytest.raises(NotFound):
        await groups_store.get_group(db, alice, clients.id)


async def test_list_groups_counts_members(db: Database, alice: UUID) -> None:
    a = await groups_store.create_group(db, alice, "b-groupe")
    b = await groups_store.create_group(db, alice, "A-groupe")
    empty = await groups_store.create_group(db, alice, "Vide")
    ids = [await _add(db, alice, f"06123456{i:02d}") for i in range(5)]
    await groups_store.add_members(db, alice, a.id, ids)
    await groups_store.add_members(db, alice, b.id, ids[:2])
    assert await groups_store.remove_members(db, alice, a.id, ids[:1]) == 1
    groups = await groups_store.list_groups(db, alice)
    assert [(g.name, g.member_count) for g in groups] == [("A-groupe", 2), ("b-groupe", 4), ("Vide", 0)]
    assert (await groups_store.group_by_name(db, alice, "vide")).member_count == 0
    assert empty.member_count == 0


# --- listing and search ---------------------------------------------------------------------------------


async def _people(db: Database, account: UUID) -> dict[str, int]:
    people = [
        ("0612345601", "Dupont", "Jean", "Mairie de Lyon"),
        ("0612345602", "Dupond", "Hélène", "Boulangerie Martin"),
        ("0612345603", "Martin", "Éric", ""),
        ("0172360170", "Émile", "Zoé", "Mairie de Paris"),
        ("0698765432", "", "", "Œuvres sociales"),
        ("0612345604", "dupont", "Anne", ""),
    ]
    ids = {}
    for phone, nom, prenom, societe in people:
        contact = await store.create_contact(
            db, account, phone=phone, nom=nom, prenom=prenom, societe=societe, allow_international=False
        )
        ids[nom or societe] = contact.id
    return ids


async def test_listing_pages_cover_every_contact_once_in_name_order(db: Database, alice: UUID) -> None:
    await _people(db, alice)
    seen: list[tuple[str, str]] = []
    after = None
    pages = 0
    while True:
        page = await store.list_contacts(db, alice, after=after, limit=2)
        pages += 1
        seen += [(c.nom, c.prenom) for c in page.contacts]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert pages == 3
    # Sorted by the folded name then prénom: accents and case do not matter; no name sorts first.
    assert seen == [
        ("", ""),
        ("Dupond", "Hélène"),
        ("dupont", "Anne"),
        ("Dupont", "Jean"),
        ("Émile", "Zoé"),
        ("Martin", "Éric"),
    ]


async def test_listing_by_societe_and_by_number(db: Database, alice: UUID) -> None:
    await _people(db, alice)
    by_societe = await store.list_contacts(db, alice, order="societe", limit=10)
    assert [c.societe for c in by_societe.contacts][-3:] == [
        "Mairie de Lyon",
        "Mairie de Paris",
        "Œuvres sociales",
    ]
    first = await store.list_contacts(db, alice, order="number", limit=3)
    rest = await store.list_contacts(db, alice, order="number", limit=10, after=first.next_cursor)
    numbers = [c.e164 for c in first.contacts + rest.contacts]
    assert numbers == sorted(numbers)
    assert len(numbers) == 6
    assert rest.next_cursor is None


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("dup", {"Dupont", "Dupond", "dupont"}),
        ("DUPON", {"Dupont", "Dupond", "dupont"}),
        ("helene", {"Dupond"}),
        ("éri", {"Martin"}),
        ("martin", {"Martin"}),  # the nom; "Boulangerie Martin" does not start so
        ("mairie", {"Dupont", "Émile"}),
        ("oeuvres", {"Œuvres sociales"}),
        ("jean dupont", {"Dupont"}),
        ("dupont zoé", set()),
        ("06 12 34 56 0", {"Dupont", "Dupond", "Martin", "dupont"}),
        ("0612345602", {"Dupond"}),
        ("+33 1", {"Émile"}),
        ("6987", {"Œuvres sociales"}),
        ("zzz", set()),
    ],
)
async def test_search(db: Database, alice: UUID, search: str, expected: set[str]) -> None:
    ids = await _people(db, alice)
    names = {v: k for k, v in ids.items()}
    page = await store.list_contacts(db, alice, search=search, limit=50)
    assert {names[c.id] for c in page.contacts} == expected
    assert await store.count_contacts(db, alice, search=search) == len(expected)


async def test_listing_a_group(db: Database, alice: UUID) -> None:
    ids = await _people(db, alice)
    group = await groups_store.create_group(db, alice, "Mairies")
    await groups_store.add_members(db, alice, group.id, [ids["Dupont"], ids["Émile"]])
    page = await store.list_contacts(db, alice, group_id=group.id)
    assert [c.nom for c in page.contacts] == ["Dupont", "Émile"]
    assert all(c.groups == (store.GroupRef(group.id, "Mairies"),) for c in page.contacts)
    assert await store.count_contacts(db, alice, group_id=group.id, search="emi") == 1


async def test_listing_refuses_bad_pages(db: Database, alice: UUID) -> None:
    await _people(db, alice)
    page = await store.list_contacts(db, alice, limit=2)
    assert page.next_cursor is not None
    for kwargs in (
        {"limit": 0},
        {"limit": store.MAX_PAGE_SIZE + 1},
        {"after": "not a cursor!"},
        {"after": page.next_cursor, "order": "number"},  # a cursor of another order
        {"after": base64.urlsafe_b64encode(b'["name","a","b","not an id"]').decode()},
        {"after": base64.urlsafe_b64encode(b'["name","a","b",99999999999999999999]').decode()},
        {"search": "a b c d e"},
    ):
        with pytest.raises(InvalidInput):
            await store.list_contacts(db, alice, **kwargs)


# --- a send's targets -----------------------------------------------------------------------------------


async def test_targets_of_one_contact_and_of_groups(db: Database, alice: UUID) -> None:
    ids = [await _add(db, alice, f"06123456{i:02d}") for i in range(6)]
    g1 = await groups_store.create_group(db, alice, "Un")
    g2 = await groups_store.create_group(db, alice, "Deux")
    await groups_store.add_members(db, alice, g1.id, ids[0:3])
    await groups_store.add_members(db, alice, g2.id, ids[2:5])  # ids[2] is in both groups

    one = await targets_store.numbers_for_targets(db, alice, contact_ids=[ids[5]])
    assert one == [(ids[5], "+33612345605")]

    both = await targets_store.numbers_for_targets(db, alice, group_ids=[g1.id, g2.id])
    assert [t.contact_id for t in both] == ids[0:5]  # ids[2] once
    assert len({t.e164 for t in both}) == 5

    mixed = await targets_store.numbers_for_targets(
        db, alice, contact_ids=[ids[5], ids[0]], group_ids=[g2.id]
    )
    assert [t.contact_id for t in mixed] == [ids[0], ids[2], ids[3], ids[4], ids[5]]


async def test_targets_of_part_of_groups(db: Database, alice: UUID) -> None:
    ids = [await _add(db, alice, f"06123456{i:02d}") for i in range(6)]
    g1 = await groups_store.create_group(db, alice, "Un")
    g2 = await groups_store.create_group(db, alice, "Deux")
    await groups_store.add_members(db, alice, g1.id, ids[0:3])
    await groups_store.add_members(db, alice, g2.id, ids[2:5])

    part = await targets_store.numbers_for_targets(
        db, alice, group_ids=[g1.id, g2.id], subset_contact_ids=[ids[1], ids[2], ids[4], ids[5]]
    )
    # ids[5] is the account's contact but in neither group: a subset only narrows the groups.
    assert [t.contact_id for t in part] == [ids[1], ids[2], ids[4]]

    with pytest.raises(InvalidInput) as caught:
        await targets_store.numbers_for_targets(db, alice, group_ids=[g1.id], subset_contact_ids=[ids[5]])
    assert caught.value.code == "no_recipients"
    with pytest.raises(InvalidInput) as caught:
        await targets_store.numbers_for_targets(db, alice, group_ids=[g1.id], subset_contact_ids=[])
    assert caught.value.code == "no_recipients"


async def test_empty_group_and_no_target_are_reported_distinctly(db: Database, alice: UUID) -> None:
    empty = await groups_store.create_group(db, alice, "Vide")
    full = await groups_store.create_group(db, alice, "Plein")
    contact_id = await _add(db, alice, "0612345678")
    await groups_store.add_members(db, alice, full.id, [contact_id])

    with pytest.raises(InvalidInput) as caught:
        await targets_store.numbers_for_targets(db, alice, group_ids=[empty.id])
    assert caught.value.code == "group_empty"
    assert caught.value.message_fr == "Le groupe de contacts est vide."
    assert (await groups_store.group_by_name(db, alice, "VIDE")).member_count == 0

    # An empty group beside a non-empty one is no error: its members are simply none.
    assert await targets_store.numbers_for_targets(db, alice, group_ids=[empty.id, full.id]) == [
        (contact_id, "+33612345678")
    ]
    with pytest.raises(InvalidInput) as caught:
        await targets_store.numbers_for_targets(db, alice)
    assert caught.value.code == "no_targets"


# --- isolation ------------------------------------------------------------------------------------------


async def test_one_account_never_sees_another_accounts_contacts(db: Database, alice: UUID, bob: UUID) -> None:
    alice_ids = await _people(db, alice)
    bob_contact = await _add(db, bob, "0612345601", "Dupont", "Bob")  # the same number as one of Alice's
    bob_group = await groups_store.create_group(db, bob, "Mairies")
    await groups_store.add_members(db, bob, bob_group.id, [bob_contact])
    alice_group = await groups_store.create_group(db, alice, "Mairies")  # same name: another group

    assert alice_group.id != bob_group.id
    assert await store.count_contacts(db, bob) == 1
    assert await store.count_contacts(db, alice) == 6
    page = await store.list_contacts(db, bob, search="dupont")
    assert [c.id for c in page.contacts] == [bob_contact]
    assert bob_contact not in {c.id for c in (await store.list_contacts(db, alice, limit=50)).contacts}
    assert [g.id for g in await groups_store.list_groups(db, alice)] == [alice_group.id]
    assert (await groups_store.group_by_name(db, alice, "mairies")).member_count == 0

    # Alice using Bob's ids: everything is NotFound, nothing of Bob's changes.
    with pytest.raises(NotFound):
        await store.get_contact(db, alice, bob_contact)
    with pytest.raises(NotFound):
        await store.update_contact(db, alice, bob_contact, nom="Pirate", allow_international=False)
    with pytest.raises(NotFound):
        await store.delete_contact(db, alice, bob_contact)
    assert await store.delete_contacts(db, alice, [bob_contact]) == 0
    with pytest.raises(NotFound):
        await groups_store.get_group(db, alice, bob_group.id)
    with pytest.raises(NotFound):
        await groups_store.rename_group(db, alice, bob_group.id, "Pirates")
    with pytest.raises(NotFound):
        await groups_store.delete_group(db, alice, bob_group.id)
    with pytest.raises(NotFound):
        await groups_store.add_members(db, alice, bob_group.id, [alice_ids["Dupont"]])
    with pytest.raises(NotFound):
        await groups_store.add_members(db, alice, alice_group.id, [bob_contact])
    with pytest.raises(NotFound):
        await groups_store.remove_members(db, alice, bob_group.id, [bob_contact])
    with pytest.raises(NotFound):
        await store.list_contacts(db, alice, group_id=bob_group.id)
    with pytest.raises(NotFound):
        await store.count_contacts(db, alice, group_id=bob_group.id)
    with pytest.raises(NotFound):
        await store.create_contact(
            db, alice, phone="0612345699", group_ids=[bob_group.id], allow_international=False
        )
    assert await store.count_contacts(db, alice) == 6  # the refused creation left nothing behind

    # ... and no send of Alice's can reach Bob's contacts or groups.
    with pytest.raises(NotFound):
        await targets_store.numbers_for_targets(db, alice, contact_ids=[bob_contact])
    with pytest.raises(NotFound):
        await targets_store.numbers_for_targets(db, alice, group_ids=[bob_group.id])
    with pytest.raises(NotFound):
        await targets_store.numbers_for_targets(
            db, alice, group_ids=[alice_group.id], subset_contact_ids=[bob_contact]
        )

    bob_after = await store.get_contact(db, bob, bob_contact)
    assert (bob_after.nom, bob_after.prenom) == ("Dupont", "Bob")
    assert (await groups_store.get_group(db, bob, bob_group.id)).member_count == 1
    assert await targets_store.numbers_for_targets(db, bob, group_ids=[bob_group.id]) == [
        (bob_contact, "+33612345601")
    ]
