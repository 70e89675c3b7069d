"""`vocalcast token create|list|revoke`: an account's API tokens (REST API under /api/v1).

A token is printed once, when it is created: the database keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.commands.runner import run_with_services
from engine.domain.tokens import ApiToken, NewToken
from engine.services import Services


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("token", help="API tokens of an account: create (printed once), list, revoke")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create an API token; prints it once")
    create.add_argument("--account", required=True, metavar="EMAIL")
    create.add_argument("--label", default="", help="what the token is for (shown in listings)")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=_create)

    lst = actions.add_parser("list", help="the account's tokens (never the tokens themselves)")
    lst.add_argument("--account", required=True, metavar="EMAIL")
    lst.add_argument("--json", action="store_true", help="one JSON object per token")
    lst.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("--account", required=True, metavar="EMAIL")
    revoke.add_argument("id", type=int, metavar="ID")
    revoke.set_defaults(func=_revoke)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def _create(args: argparse.Namespace) -> int:
    async def run(services: Services) -> NewToken:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.create_token(account.id, label=args.label)

    new = run_with_services(run)
    if args.json:
        print(json.dumps({**token_json(new.token), "token": new.secret}, ensure_ascii=False))
    else:
        print(f"API token {new.token.id} of {args.account.strip().lower()} (shown once, keep it secret):")
        print(new.secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    async def run(services: Services) -> list[ApiToken]:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.tokens(account.id)

    for token in run_with_services(run):
        if args.json:
            print(json.dumps(token_json(token), ensure_ascii=False))
            continue
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never used"
        state = f"revoked {token.revoked_at.isoformat(timespec='seconds')}" if token.revoked_at else "active"
        print(f"{token.id:>6}  {state:<34} {used:<26} {token.label}".rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    async def run(services: Services) -> ApiToken:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.revoke_token(account.id, args.id)

    token = run_with_services(run)
    print(f"API token {token.id} revoked")
    return 0
