"""``vocalcast stoplist add [--account EMAIL] [--source S] FILE|-``: numbers no send may call again — an
account's stop list ("liste d'opposition": clear or SHA-256-hashed numbers, one per line or first CSV
column), or without --account the operator's own list, which every account's sends respect."""

from __future__ import annotations

import argparse
import json

from engine.commands.inputs import read_input
from engine.commands.numbers import _decode
from engine.commands.runner import run_with_services
from engine.domain.stoplists import SOURCES
from engine.services import Services
from engine.services.stoplists import StopListImport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("stoplist", help="stop lists: numbers never called again")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add numbers (clear or SHA-256 of the E.164 form) to a stop list")
    add.add_argument("--account", metavar="EMAIL", help="the account's list (default: the operator's)")
    add.add_argument("--source", choices=SOURCES, default="import")
    add.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="input file (default: stdin)")
    add.set_defaults(func=_add)


def _add(args: argparse.Namespace) -> int:
    text = _decode(read_input(args.file), args.file)

    async def run(services: Services) -> StopListImport:
        account_id = None
        if args.account:
            account_id = (await services.accounts.by_email(args.account)).id
        return await services.stoplists.import_text(account_id, text, source=args.source)

    done = run_with_services(run)
    print(
        json.dumps(
            {
                "list": args.account or "operator",
                "read": done.read,
                "added": done.added,
                "refused": [{"line": line, "input": value} for line, value in done.refused],
            },
            ensure_ascii=False,
        )
    )
    return 0
