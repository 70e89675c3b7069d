"""`vocalcast webhook set|show|rotate|test|log|replay|completion-email`: an account's webhook — its
endpoint and events (or one send's own), its signing secret (printed once), a test event, the delivery log
and replays — and the e-mail it may get when each send ends."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from engine.commands.runner import run_with_services
from engine.domain.webhooks import EVENT_TYPES, Delivery
from engine.services import Services


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "webhook", help="an account's webhook: endpoint, events, secret, log, test, replay"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    set_ = actions.add_parser("set", help="set the endpoint and events (of the account, or of one send)")
    set_.add_argument("--account", required=True, metavar="EMAIL")
    target = set_.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="http(s) URL the events are POSTed to")
    target.add_argument("--none", action="store_true", help="no endpoint (with --send: the account's again)")
    set_.add_argument("--events", help=f"comma-separated, among {','.join(EVENT_TYPES)} (default: all)")
    set_.add_argument("--send", type=uuid.UUID, metavar="SEND_ID", help="this send only")
    set_.set_defaults(func=_set)

    show = actions.add_parser("show", help="the endpoint, its events and whether it is enabled")
    show.add_argument("--account", required=True, metavar="EMAIL")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)

    rotate = actions.add_parser(
        "rotate", help="a new signing secret, printed once; the old one stops at once"
    )
    rotate.add_argument("--account", required=True, metavar="EMAIL")
    rotate.set_defaults(func=_rotate)

    test = actions.add_parser("test", help="queue a test event (webhook.test) to the account's endpoint")
    test.add_argument("--account", required=True, metavar="EMAIL")
    test.set_defaults(func=_test)

    log = actions.add_parser("log", help="the delivery log, newest first")
    log.add_argument("--account", required=True, metavar="EMAIL")
    log.add_argument("--limit", type=int, default=20)
    log.add_argument("--json", action="store_true", help="one JSON object per event")
    log.set_defaults(func=_log)

    mail = actions.add_parser("completion-email", help="an e-mail when each send ends: on or off")
    mail.add_argument("--account", required=True, metavar="EMAIL")
    mail.add_argument("state", choices=["on", "off"])
    mail.set_defaults(func=_completion_email)

    replay = actions.add_parser("replay", help="deliver an event again (same id, same body)")
    replay.add_argument("--account", required=True, metavar="EMAIL")
    replay.add_argument("id", type=uuid.UUID, metavar="EVENT_ID")
    replay.set_defaults(func=_replay)


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "type": d.type,
        "send_id": None if d.send_id is None else str(d.send_id),
        "sequence": d.sequence,
        "occurred_at": d.occurred_at.isoformat(),
        "status": d.status,
        "tries": d.tries,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "last_latency_ms": d.last_latency_ms,
    }


def _events(raw: str | None) -> list[str] | None:
    return None if raw is None else [e.strip() for e in raw.split(",") if e.strip()]


def _set(args: argparse.Namespace) -> int:
    async def run(services: Services) -> str | None:
        account = await services.accounts.by_email(args.account)
        hooks = services.webhooks
        if args.send is not None:
            if args.none:
                await hooks.clear_for_send(account.id, args.send)
                return None
            await hooks.set_for_send(account.id, args.send, url=args.url, events=_events(args.events))
            return None
        _, secret = await hooks.configure(
            account.id, url=None if args.none else args.url, events=_events(args.events)
        )
        return secret

    secret = run_with_services(run)
    where = f"send {args.send}" if args.send is not None else args.account.strip().lower()
    print(f"webhook of {where}: {'none' if args.none else args.url}")
    if secret is not None:
        print("signing secret (shown once, keep it secret):")
        print(secret)
    return 0


def _show(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Any:
        account = await services.accounts.by_email(args.account)
        return await services.webhooks.show(account.id)

    settings = run_with_services(run)
    events = list(EVENT_TYPES if settings is None else settings.events)
    out: dict[str, Any] = {
        "url": None if settings is None else settings.url,
        "events": events,
        "enabled": settings is not None and settings.url is not None and settings.disabled_at is None,
        "disabled_reason": None if settings is None else settings.disabled_reason,
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        state = "enabled" if out["enabled"] else f"disabled ({out['disabled_reason'] or 'no URL'})"
        print(f"url:    {out['url'] or '-'}\nevents: {','.join(events)}\nstate:  {state}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    async def run(services: Services) -> str:
        account = await services.accounts.by_email(args.account)
        return await services.webhooks.rotate(account.id)

    secret = run_with_services(run)
    print("new signing secret (shown once, keep it secret):")
    print(secret)
    return 0


def _test(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Delivery:
        account = await services.accounts.by_email(args.account)
        return await services.webhooks.test(account.id)

    queued = run_with_services(run)
    print(f"test event {queued.id} queued")
    return 0


def _log(args: argparse.Namespace) -> int:
    async def run(services: Services) -> list[Delivery]:
        account = await services.accounts.by_email(args.account)
        return await services.webhooks.deliveries(account.id, limit=args.limit)

    for d in run_with_services(run):
        if args.json:
            print(json.dumps(delivery_json(d), ensure_ascii=False))
            continue
        answer = d.last_status if d.last_status is not None else (d.last_error or "-")
        print(f"{d.id}  {d.type:<16} {d.status:<9} tries={d.tries:<3} last={answer}")
    return 0


def _completion_email(args: argparse.Namespace) -> int:
    async def run(services: Services) -> None:
        account = await services.accounts.by_email(args.account)
        await services.webhooks.set_completion_email(account.id, args.state == "on")

    run_with_services(run)
    print(f"completion e-mail of {args.account.strip().lower()}: {args.state}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Delivery:
        account = await services.accounts.by_email(args.account)
        return await services.webhooks.replay(account.id, args.id)

    again = run_with_services(run)
    print(f"event {again.id} queued again")
    return 0
