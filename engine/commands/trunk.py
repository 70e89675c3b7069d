"""`vocalcast trunk add|list|remove`: SIP trunks are rows, rendered into PJSIP and reloaded live."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from engine.domain.trunks import AUTH_MODES, NUMBER_FORMATS, Trunk
from engine.settings import Settings
from engine.stack import apply_trunks
from engine.store import Database
from engine.store.trunks import list_trunks, remove_trunk, upsert_trunk


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("trunk", help="SIP trunks: add, list, remove")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add or update a trunk, then reload PJSIP")
    add.add_argument("name")
    add.add_argument("--host", required=True, help="the operator's SIP address (IP or host name)")
    add.add_argument("--port", type=int, default=5060)
    add.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default="ip",
        help="ip: the operator trusts our address; digest: answer its challenges; "
        "register: also register to it",
    )
    add.add_argument("--username")
    add.add_argument("--password", help="digest password; '-' reads it from standard input")
    add.add_argument("--from-user")
    add.add_argument("--from-domain")
    add.add_argument("--codecs", default="alaw,ulaw")
    add.add_argument(
        "--format",
        dest="number_format",
        choices=NUMBER_FORMATS,
        default="e164",
        help="how numbers are written in the Request-URI",
    )
    add.add_argument(
        "--pai", dest="pai_number", help="identity the operator vouches for (P-Asserted-Identity)"
    )
    add.add_argument("--max-channels", type=int, default=30)
    add.add_argument("--max-cps", type=float, default=5.0)
    add.add_argument("--priority", type=int, default=100, help="lower is tried first")
    add.add_argument("--disabled", action="store_true")
    add.add_argument(
        "--deposit-prefix", help="direct voicemail deposit: prefix the operator puts before the number"
    )
    add.add_argument(
        "--deposit-header", help="direct voicemail deposit: header the operator expects, 'X-Name: value'"
    )
    add.set_defaults(func=_add)

    lst = actions.add_parser("list", help="the trunks")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    rm = actions.add_parser("remove", help="remove a trunk, then reload PJSIP")
    rm.add_argument("name")
    rm.set_defaults(func=_remove)


def _add(args: argparse.Namespace) -> int:
    read_stdin = args.password == "-"  # noqa: S105 - "-" means "read it from stdin"
    password = sys.stdin.readline().strip() if read_stdin else args.password
    trunk = Trunk(
        name=args.name,
        host=args.host,
        port=args.port,
        auth=args.auth,
        username=args.username,
        password=password,
        from_user=args.from_user,
        from_domain=args.from_domain,
        codecs=tuple(c.strip() for c in args.codecs.split(",") if c.strip()),
        number_format=args.number_format,
        pai_number=args.pai_number,
        max_channels=args.max_channels,
        max_cps=args.max_cps,
        priority=args.priority,
        enabled=not args.disabled,
        deposit_prefix=args.deposit_prefix,
        deposit_header=args.deposit_header,
    ).validate()
    settings = Settings.from_env()

    async def run() -> None:
        async with Database(settings.dsn, min_size=1, max_size=1) as db:
            await upsert_trunk(db, trunk)
        await apply_trunks(settings)

    asyncio.run(run())
    print(f"trunk {trunk.name} saved and applied")
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> list[Trunk]:
        async with Database(settings.dsn, min_size=1, max_size=1) as db:
            return await list_trunks(db)

    trunks = asyncio.run(run())
    for t in trunks:
        if args.json:
            row = asdict(t)
            row["password"] = "***" if t.password else None
            print(json.dumps(row))
        else:
            flags = " ".join(f for f, on in (("demo", t.demo), ("disabled", not t.enabled)) if on)
            print(
                f"{t.name:<16} {t.host}:{t.port:<6} auth={t.auth:<8} format={t.number_format:<15} "
                f"channels={t.max_channels} cps={t.max_cps:g} priority={t.priority} {flags}".rstrip()
            )
    return 0


def _remove(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> None:
        async with Database(settings.dsn, min_size=1, max_size=1) as db:
            await remove_trunk(db, args.name)
        await apply_trunks(settings)

    asyncio.run(run())
    print(f"trunk {args.name} removed")
    return 0
