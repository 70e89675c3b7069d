"""`vocalcast message add|list|rename|delete`: an account's message library from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.commands.runner import run_with_services
from engine.domain.accounts import PARIS, Message
from engine.errors import InvalidInput
from engine.services import Services


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("message", help="an account's recorded messages: add, list, rename, delete")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="convert a WAV or MP3 file into a message; prints its reference")
    add.add_argument("--account", required=True, metavar="EMAIL")
    add.add_argument("file", type=Path, metavar="FILE")
    add.add_argument("--title", help="default: the file name")
    add.add_argument("--greeting", action="store_true", help="a greeting (message d'accueil)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=_add)

    lst = actions.add_parser("list", help="the account's messages, by reference")
    lst.add_argument("--account", required=True, metavar="EMAIL")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(func=_list)

    rename = actions.add_parser("rename", help="change a message's title")
    rename.add_argument("--account", required=True, metavar="EMAIL")
    rename.add_argument("ref", type=int, metavar="REF")
    rename.add_argument("title", metavar="TITLE")
    rename.set_defaults(func=_rename)

    delete = actions.add_parser("delete", help="delete a message (its reference is never reused)")
    delete.add_argument("--account", required=True, metavar="EMAIL")
    delete.add_argument("ref", type=int, metavar="REF")
    delete.set_defaults(func=_delete)


def message_json(m: Message) -> dict[str, Any]:
    return {
        "ref": m.ref,
        "id": str(m.id),
        "title": m.title,
        "origin": m.origin,
        "is_greeting": m.is_greeting,
        "duration_s": round(m.duration_s, 2),
        "loudness_lufs": round(m.loudness_lufs, 1),
        "original_name": m.original_name,
        "created_at": m.created_at.isoformat(),
    }


def _line(m: Message) -> str:
    kind = "greeting" if m.is_greeting else "message"
    when = f"{m.created_at.astimezone(PARIS):%Y-%m-%d %H:%M}"
    return f"{m.ref:>4}  {m.duration_s:6.1f} s  {m.origin:<5}  {kind:<8}  {when}  {m.title}"


def _add(args: argparse.Namespace) -> int:
    src: Path = args.file
    if not src.is_file():
        raise InvalidInput("file_missing", f"{src}: no such file")

    async def run(services: Services) -> Message:
        account = await services.accounts.by_email(args.account)
        return await services.messages.add(
            account.id,
            src,
            title=args.title,
            origin="file",
            is_greeting=args.greeting,
            original_name=src.name,
        )

    message = run_with_services(run)
    if args.json:
        print(json.dumps(message_json(message)))
    else:
        print(f"message {message.ref} added: {message.title!r}, {message.duration_s:.1f} s")
    return 0


def _list(args: argparse.Namespace) -> int:
    async def run(services: Services) -> list[Message]:
        account = await services.accounts.by_email(args.account)
        return await services.messages.list(account.id)

    for m in run_with_services(run):
        print(json.dumps(message_json(m)) if args.json else _line(m))
    return 0


def _rename(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Message:
        account = await services.accounts.by_email(args.account)
        return await services.messages.rename(account.id, args.ref, args.title)

    message = run_with_services(run)
    print(f"message {message.ref} renamed {message.title!r}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Message:
        account = await services.accounts.by_email(args.account)
        return await services.messages.delete(account.id, args.ref)

    message = run_with_services(run)
    print(f"message {message.ref} deleted")
    return 0
