"""`vocalcast send` (create a send) and `vocalcast sends show|list|pause|resume|cancel`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from engine.commands.runner import run_with_services
from engine.domain.recipients import parse_paste
from engine.domain.schedule import parse_deferred
from engine.domain.sends import Send, Target
from engine.errors import InvalidInput
from engine.services import Services
from engine.services.sends import DEFAULT


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
    text = sys.stdin.read() if args.numbers == "-" else Path(args.numbers).read_text(encoding="utf-8")
    at = parse_deferred(args.at, datetime.now(UTC)).at_utc if args.at else None
    if (args.retries is None) != (args.interval is None) and args.retries:
        raise InvalidInput("bad_retry_policy", "--retries and --interval go together")

    async def run(services: Services) -> dict[str, Any]:
        account = await services.accounts.by_email(args.account)
        report = parse_paste(
            text,
            max_numbers=services.settings.max_recipients,
            allow_international=account.allow_international,
        )
        refused = [line for line in report.lines if line.refusal is not None]
        greeting = _opt(args.greeting)
        created = await services.sends.create(
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

    result = run_with_services(run)
    for line in result["refused"]:
        print(f"line {line.line}: {line.input!r} refused: {line.refusal.code}", file=sys.stderr)
    print(result["send"].id)
    return 0


def _send_json(send: Send) -> dict[str, Any]:
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
    async def run(services: Services) -> dict[str, Any]:
        send = await services.sends.get(args.id, account_id=None)  # the operator sees every account's
        progress = await services.sends.progress(send)
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
                for r in await services.sends.recipients(send, limit=100_000)
            ]
        return out

    out = run_with_services(run)
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
    async def run(services: Services) -> list[dict[str, Any]]:
        account = await services.accounts.by_email(args.account)
        # A deleted message has no reference left to show (null).
        refs = await services.messages.refs(account.id)
        sends = await services.sends.history(account.id, limit=args.limit)
        outcomes = await services.sends.outcomes(sends)
        rows = []
        for send in sends:
            row = _send_json(send)
            row["message_ref"] = refs.get(send.message_id)
            row["outcomes"] = outcomes[send.id]
            rows.append(row)
        return rows

    for row in run_with_services(run):
        print(
            json.dumps(row)
            if args.json
            else f"{row['id']}  {row['status']:<10} {row['origin']:<6} "
            f"{row['recipients']:>6} numbers  {row['comment']}"
        )
    return 0


def _steer(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Send:
        return await services.sends.steer(args.id, args.action_name)

    send = run_with_services(run)
    print(f"send {send.id}: {send.status.value}")
    return 0
