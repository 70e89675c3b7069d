"""`vocalcast send` (create a send) and `vocalcast sends show|list|pause|resume|cancel`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from engine.domain.recipients import parse_paste
from engine.domain.schedule import parse_deferred
from engine.domain.sends import Target
from engine.errors import InvalidInput
from engine.services.sends import DEFAULT, create_send, steer
from engine.settings import Settings
from engine.store import Database
from engine.store import messages as messages_store
from engine.store import sends as sends_store
from engine.store.accounts import account_by_email


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser("send", help="create a send: call a message out to a list of numbers")
    send.add_argument("--account", required=True, metavar="EMAIL")
    send.add_argument("--ref", required=True, type=int, help="the message's reference number")
    send.add_argument("--numbers", required=True, metavar="FILE|-", help="numbers, one per line ('-': stdin)")
    send.add_argument("--at", metavar="HHMMDDMMYYYY", help="deferred start, Europe/Paris time")
    send.add_argument("--greeting", metavar="REF|off", help="greeting message (press *), or off")
    send.add_argument("--transfer", metavar="NUMBER|off", help="transfer number (press 9), or off")
    send.add_argument("--sender", metavar="NUMBER|off", help="a verified sender number to present, or off")
    send.add_argument("--retries", type=int, help="extra attempts for unreached numbers")
    send.add_argument("--interval", type=int, metavar="MIN", help="minutes between attempts")
    send.add_argument("--depot", action="store_true", help="voicemail drop (mobiles only)")
    send.add_argument("--comment", default="", help="your private reference for this send")
    send.set_defaults(func=_send)

    sends = sub.add_parser("sends", help="follow and steer sends")
    actions = sends.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="a send and its progress")
    show.add_argument("id", type=UUID)
    show.add_argument("--json", action="store_true")
    show.add_argument("--recipients", action="store_true", help="also every recipient and its attempts")
    show.set_defaults(func=_show)
    lst = actions.add_parser("list", help="an account's sends, newest first")
    lst.add_argument("--account", required=True, metavar="EMAIL")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--limit", type=int, default=50)
    lst.set_defaults(func=_list)
    for name in ("pause", "resume", "cancel"):
        action = actions.add_parser(name, help=f"{name} a send (calls in progress finish)")
        action.add_argument("id", type=UUID)
        action.set_defaults(func=_steer, action_name=name)


def _opt(value: str | None, *, off_means_none: bool = True) -> Any:
    if value is None:
        return DEFAULT
    return None if off_means_none and value.lower() == "off" else value


def _send(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    text = sys.stdin.read() if args.numbers == "-" else Path(args.numbers).read_text(encoding="utf-8")
    at = parse_deferred(args.at, datetime.now(UTC)).at_utc if args.at else None
    if (args.retries is None) != (args.interval is None) and args.retries:
        raise InvalidInput("bad_retry_policy", "--retries and --interval go together")

    async def run() -> dict[str, Any]:
        async with Database(settings.dsn, min_size=1, max_size=2) as db:
            account = await account_by_email(db, args.account)
            report = parse_paste(
                text, max_numbers=settings.max_recipients, allow_international=account.allow_international
            )
            refused = [line for line in report.lines if line.refusal is not None]
            greeting = _opt(args.greeting)
            created = await create_send(
                db,
                settings,
                account,
                message_ref=args.ref,
                targets=[Target(n) for n in report.numbers],
                origin="cli",
                comment=args.comment,
                at=at,
                greeting_ref=int(greeting) if isinstance(greeting, str) else greeting,
                transfer=_opt(args.transfer),
                sender=_opt(args.sender),
                retries=DEFAULT if args.retries is None else args.retries,
                retry_interval_s=DEFAULT if args.interval is None else args.interval * 60,
                voicemail_drop=True if args.depot else DEFAULT,
            )
            return {"send": created, "refused": refused, "duplicates": len(report.duplicates)}

    result = asyncio.run(run())
    for line in result["refused"]:
        print(f"line {line.line}: {line.input!r} refused: {line.refusal.code}", file=sys.stderr)
    print(result["send"].id)
    return 0


def _send_json(send: sends_store.Send) -> dict[str, Any]:
    return {
        "id": str(send.id),
        "origin": send.origin,
        "status": send.status.value,
        "code": send.code,
        "comment": send.comment,
        "start_at": send.start_at.isoformat(),
        "deferred": send.deferred,
        "recipients": send.recipients_total,
        "credits_used": send.credits_used,
        "demo": send.demo,
        "created_at": send.created_at.isoformat(),
        "ended_at": send.ended_at.isoformat() if send.ended_at else None,
    }


def _show(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> dict[str, Any]:
        async with Database(settings.dsn, min_size=1, max_size=2) as db:
            send = await sends_store.get_send(db, args.id)
            progress = await sends_store.progress(db, args.id)
            out = _send_json(send)
            out["progress"] = {
                "done": progress.done,
                "calling": progress.calling,
                "pending": progress.pending,
                "cancelled": progress.cancelled,
                "attempts": progress.attempts,
                "outcomes": progress.outcomes,
            }
            if args.recipients:
                out["recipients"] = [
                    {
                        **r,
                        "final_at": r["final_at"].isoformat() if r["final_at"] else None,
                        "attempts_detail": json.loads(r["attempts_detail"]),
                    }
                    for r in await sends_store.recipients(db, args.id, limit=100_000)
                ]
            return out

    out = asyncio.run(run())
    if args.json:
        print(json.dumps(out, default=str))
    else:
        progress = out["progress"]
        print(
            f"send {out['id']}: {out['status']} ({out['origin']}), {out['recipients']} numbers, "
            f"{progress['done']} done, {progress['calling']} calling, {progress['pending']} pending"
        )
        for outcome, count in sorted(progress["outcomes"].items()):
            print(f"  {outcome:<14} {count}")
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> list[dict[str, Any]]:
        async with Database(settings.dsn, min_size=1, max_size=2) as db:
            account = await account_by_email(db, args.account)
            # A deleted message has no reference left to show (null).
            refs = {m.id: m.ref for m in await messages_store.list_messages(db, account.id)}
            sends = await sends_store.list_sends(db, account.id, limit=args.limit)
            outcomes = await sends_store.outcomes_of(db, [send.id for send in sends])
            rows = []
            for send in sends:
                row = _send_json(send)
                row["message_ref"] = refs.get(send.message_id)
                row["outcomes"] = outcomes[send.id]
                rows.append(row)
            return rows

    for row in asyncio.run(run()):
        print(
            json.dumps(row)
            if args.json
            else f"{row['id']}  {row['status']:<10} {row['origin']:<6} "
            f"{row['recipients']:>6} numbers  {row['comment']}"
        )
    return 0


def _steer(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> sends_store.Send:
        async with Database(settings.dsn, min_size=1, max_size=2) as db:
            return await steer(db, args.id, args.action_name)

    send = asyncio.run(run())
    print(f"send {send.id}: {send.status.value}")
    return 0
