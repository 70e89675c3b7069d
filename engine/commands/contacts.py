"""`vocalcast contacts import|list|groups`: an account's contacts and groups from the command line.

``import`` reads an Excel CSV and prints its report (refused rows with their row number and French
reason); refused rows do not change the exit status, an unusable file does (nothing is imported).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands.inputs import read_input
from engine.commands.runner import run_with_services
from engine.domain.contacts import MAX_PAGE_SIZE, Contact, Group
from engine.services import Services
from engine.services.contacts_import import ImportReport, report_json

LIST_PAGE_SIZE = MAX_PAGE_SIZE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("contacts", help="an account's contacts and groups: import, list, groups")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    imp = actions.add_parser(
        "import",
        help="import an Excel CSV (Société;Nom;Prénom;Téléphone;Groupe); prints the report",
        description=(
            "Import contacts from a CSV saved by Excel as 'CSV (séparateur: point-virgule)'. A number "
            "already in the account's contacts updates that contact; a Groupe column creates the groups."
        ),
    )
    imp.add_argument("file", metavar="FILE|-", help="the CSV file ('-': standard input)")
    imp.add_argument("--account", required=True, metavar="EMAIL")
    imp.add_argument("--json", action="store_true", help="print the report as one JSON object")
    imp.set_defaults(func=_import)

    lst = actions.add_parser("list", help="the account's contacts, by name")
    lst.add_argument("--account", required=True, metavar="EMAIL")
    lst.add_argument("--group", metavar="NAME", help="only the members of this group")
    lst.add_argument("--search", metavar="TEXT", help="nom, prénom or société starting so, or a number")
    lst.add_argument("--order", choices=("name", "societe", "number"), default="name")
    lst.add_argument("--json", action="store_true", help="one JSON object per contact")
    lst.set_defaults(func=_list)

    groups = actions.add_parser("groups", help="the account's contact groups and their sizes")
    groups.add_argument("--account", required=True, metavar="EMAIL")
    groups.add_argument("--json", action="store_true", help="one JSON object per group")
    groups.set_defaults(func=_groups)


def _import(args: argparse.Namespace) -> int:
    data = read_input(args.file)

    async def run(services: Services) -> ImportReport:
        account = await services.accounts.by_email(args.account)
        return await services.contacts.import_csv(account, data)

    report = run_with_services(run)
    if args.json:
        print(json.dumps(report_json(report), ensure_ascii=False))
        return 0
    print(f"imported:   {report.imported} new contacts")
    print(f"updated:    {report.updated} already in the contacts (not doubled)")
    print(f"duplicates: {report.duplicates_in_file} rows merged with an earlier row of the file")
    print(f"groups:     {report.groups_created} created, {report.memberships_added} memberships added")
    print(f"refused:    {len(report.refused)} rows")
    for refused in report.refused:
        shown = f"  ({refused.input})" if refused.input else ""
        print(f"  row {refused.row}: {refused.message_fr}{shown}")
    return 0


def contact_json(contact: Contact) -> dict[str, Any]:
    """A contact as the CLI and the API show it."""
    return {
        "id": contact.id,
        "societe": contact.societe,
        "nom": contact.nom,
        "prenom": contact.prenom,
        "e164": contact.e164,
        "type": contact.number_type,
        "is_mobile": contact.is_mobile,
        "groups": [group.name for group in contact.groups],
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }


def _list(args: argparse.Namespace) -> int:
    out = sys.stdout

    async def run(services: Services) -> int:
        account = await services.accounts.by_email(args.account)
        group_id = None
        if args.group is not None:
            group_id = (await services.contacts.group_by_name(account.id, args.group)).id
        after: str | None = None
        shown = 0
        while True:
            page = await services.contacts.page(
                account.id,
                group_id=group_id,
                search=args.search,
                order=args.order,
                after=after,
                limit=LIST_PAGE_SIZE,
            )
            for contact in page.contacts:
                if args.json:
                    out.write(json.dumps(contact_json(contact), ensure_ascii=False) + "\n")
                else:
                    name = " ".join(part for part in (contact.prenom, contact.nom) if part)
                    groups = ", ".join(group.name for group in contact.groups)
                    out.write(f"{contact.e164:<16} {name:<32} {contact.societe:<24} {groups}".rstrip() + "\n")
            shown += len(page.contacts)
            if page.next_cursor is None:
                return shown
            after = page.next_cursor

    shown = run_with_services(run)
    if not args.json:
        print(f"{shown} contacts", file=sys.stderr)
    return 0


def _groups(args: argparse.Namespace) -> int:
    async def run(services: Services) -> list[Group]:
        account = await services.accounts.by_email(args.account)
        return await services.contacts.groups(account.id)

    for group in run_with_services(run):
        if args.json:
            record = {
                "id": group.id,
                "name": group.name,
                "members": group.member_count,
                "created_at": group.created_at.isoformat(),
            }
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(f"{group.member_count:>8}  {group.name}")
    return 0
