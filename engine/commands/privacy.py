"""Personal data (RGPD) for the operator: `vocalcast account export|delete`, `vocalcast number
find|export|erase` (one account with ``--account``, every account with ``--all-accounts``) and
`vocalcast retention purge` (what the engine's daily job does, now or at a given instant)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from uuid import UUID

from engine.commands.runner import run_with_services
from engine.errors import InvalidInput
from engine.services import Services
from engine.services.privacy import Export


def register_account_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`account export` and `account delete`, added to the `account` group."""
    export = actions.add_parser("export", help="the account's data as one zip archive (CSV + JSON + audio)")
    export.add_argument("--account", required=True, metavar="EMAIL")
    export.add_argument(
        "--output", type=Path, metavar="FILE.zip", help="default: ./vocalcast-export-<id>.zip"
    )
    export.add_argument("--json", action="store_true", help="print the archive's manifest counts as JSON")
    export.set_defaults(func=_export_account)

    delete = actions.add_parser(
        "delete", help="erase the account's personal data (its ledger is kept, without numbers)"
    )
    delete.add_argument("--account", required=True, metavar="EMAIL")
    delete.add_argument("--yes", action="store_true", required=True, help="required: nothing can be undone")
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(func=_delete_account)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    number = sub.add_parser("number", help="everything about one phone number: find, export, erase (RGPD)")
    actions = number.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, func in (
        ("find", "count the rows holding the number", _find),
        ("export", "everything about the number as one zip archive", _export_number),
        ("erase", "erase the number (stop lists keep it, by its hash)", _erase),
    ):
        p = actions.add_parser(name, help=help_text)
        scope = p.add_mutually_exclusive_group(required=True)
        scope.add_argument("--account", metavar="EMAIL", help="in this account only")
        scope.add_argument("--all-accounts", action="store_true", help="in every account (operator)")
        p.add_argument("number", metavar="NUMBER", help="E.164 or French national form")
        if name == "export":
            p.add_argument("--output", type=Path, metavar="FILE.zip", help="default: ./vocalcast-number.zip")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    retention = sub.add_parser("retention", help="the retention purge (personal data, README)")
    retention_actions = retention.add_subparsers(dest="action", required=True, metavar="ACTION")
    purge = retention_actions.add_parser("purge", help="run the daily purge once")
    purge.add_argument("--now", type=datetime.fromisoformat, metavar="ISO-TIME", help="the purge's clock")
    purge.add_argument("--json", action="store_true")
    purge.set_defaults(func=_purge)


async def _account_id(services: Services, email: str) -> UUID:
    return (await services.accounts.by_email(email)).id


def _print_counts(
    title: str, counts: dict[str, int], as_json: bool, extra: dict[str, str] | None = None
) -> None:
    if as_json:
        print(json.dumps({**(extra or {}), "counts": counts}, ensure_ascii=False))
        return
    print(title)
    for key, value in (extra or {}).items():
        print(f"  {key}: {value}")
    for name, n in sorted(counts.items()):
        print(f"  {name:<40} {n}")


def _export_account(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Export:
        account_id = await _account_id(services, args.account)
        dest = args.output or Path(f"vocalcast-export-{account_id}.zip")
        return await services.privacy.export_account(account_id, dest.resolve())

    done = run_with_services(run)
    _print_counts("export written", done.counts, args.json, {"path": str(done.path)})
    return 0


def _delete_account(args: argparse.Namespace) -> int:
    async def run(services: Services) -> dict[str, int]:
        return await services.privacy.delete_account(await _account_id(services, args.account))

    _print_counts("account deleted; rows erased or changed:", run_with_services(run), args.json)
    return 0


async def _scope(services: Services, args: argparse.Namespace) -> UUID | None:
    return None if args.all_accounts else await _account_id(services, args.account)


def _find(args: argparse.Namespace) -> int:
    async def run(services: Services) -> dict[str, int]:
        return await services.privacy.find_number(await _scope(services, args), args.number)

    _print_counts("rows holding the number:", run_with_services(run), args.json)
    return 0


def _export_number(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Export:
        dest = (args.output or Path("vocalcast-number.zip")).resolve()
        return await services.privacy.export_number(await _scope(services, args), args.number, dest)

    done = run_with_services(run)
    _print_counts("export written", done.counts, args.json, {"path": str(done.path)})
    return 0


def _erase(args: argparse.Namespace) -> int:
    async def run(services: Services) -> dict[str, int]:
        return await services.privacy.erase_number(await _scope(services, args), args.number)

    _print_counts("number erased; rows changed:", run_with_services(run), args.json)
    return 0


def _purge(args: argparse.Namespace) -> int:
    now = args.now
    if now is not None and now.tzinfo is None:
        raise InvalidInput("now_without_zone", "--now needs a time zone, e.g. 2027-01-01T00:00:00+00:00")

    async def run(services: Services) -> dict[str, int]:
        return await services.privacy.purge(now)

    _print_counts("purged:", run_with_services(run), args.json)
    return 0
