"""`vocalcast trunk add|set|list|remove`: SIP trunks are rows, rendered into PJSIP and reloaded live (through
the trunks service, with the running stack's own settings: its mode decides whether the demo trunk exists)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace

from engine.commands.runner import run_with_services
from engine.domain.numbers import Number, normalize
from engine.domain.trunks import AUTH_MODES, NUMBER_FORMATS, Trunk
from engine.errors import NotFound
from engine.services import Services
from engine.services.trunks import Applied
from engine.store.trunks import TrunkHealth


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("trunk", help="SIP trunks: add, set, list, remove")
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
        "--pai",
        dest="pai_number",
        help="required: the number the operator vouches for (P-Asserted-Identity of every call)",
    )
    add.add_argument(
        "--presented",
        action="append",
        default=[],
        metavar="NUMBER",
        help="a presented number the operator accepts for us (From); repeatable. A send presenting a "
        "number goes only through the trunks listing it",
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
    add.add_argument(
        "--qualify",
        choices=("on", "off"),
        default="on",
        help="OPTIONS pings (off for SBCs that ignore them: the trunk is then always deemed reachable)",
    )
    add.add_argument(
        "--failover-only",
        action="store_true",
        help="take calls only while every higher-priority trunk is unhealthy",
    )
    add.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="ROUTE",
        help="carry only these numbers: mobile, fixed, overseas or an E.164 prefix (+3369); repeatable",
    )
    add.add_argument(
        "--identify",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="another address or network (CIDR) the operator's calls come from; repeatable",
    )
    add.add_argument("--outbound-proxy", help="sip:host[:port][;lr] every request to the trunk goes through")
    add.add_argument(
        "--line", action="store_true", help="registered trunk: match its inbound calls by our contact's line"
    )
    add.set_defaults(func=_add)

    change = actions.add_parser("set", help="change a trunk's identity numbers, then reload PJSIP")
    change.add_argument("name")
    change.add_argument("--pai", dest="pai_number", help="the number the operator vouches for (PAI)")
    change.add_argument(
        "--presented",
        action="append",
        metavar="NUMBER",
        help="the presented numbers the operator accepts (replaces the list); repeatable",
    )
    change.add_argument("--no-presented", action="store_true", help="empty the list (hidden calls only)")
    change.set_defaults(func=_set)

    lst = actions.add_parser("list", help="the trunks")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    rm = actions.add_parser("remove", help="remove a trunk, then reload PJSIP")
    rm.add_argument("name")
    rm.set_defaults(func=_remove)

    apply = actions.add_parser(
        "apply",
        help="render and reload the trunks everywhere again, changing nothing (a cluster: Kamailio's "
        "dispatcher list and every media server; the compose file's edge-prepare runs it)",
    )
    apply.set_defaults(func=_apply)


class _BadNumber(ValueError):
    pass


def _e164(raw: str, what: str) -> str:
    number = normalize(raw, allow_international=True)
    if not isinstance(number, Number):
        raise _BadNumber(f"{what} {raw!r} is not a phone number ({number.code})")
    return number.e164


def _identity(args: argparse.Namespace) -> tuple[str | None, tuple[str, ...] | None] | None:
    """(the PAI, the presented list in E.164) from the options (None where not given); None after an
    error message."""
    try:
        pai = args.pai_number or None
        if pai is not None:
            _e164(pai, "--pai")  # kept as written: it goes on the wire in the operator's own format
        presented = None
        if args.presented is not None:
            presented = tuple(dict.fromkeys(_e164(n, "--presented") for n in args.presented))
    except _BadNumber as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return pai, presented


def _add(args: argparse.Namespace) -> int:
    if not args.pai_number:
        # Issue 18: the PAI is what the carrier vouches for; without it a call would assert the presented
        # number, which the carrier does not vouch for.
        print(
            "error: trunk add needs --pai NUMBER: the number the operator vouches for, sent as "
            "P-Asserted-Identity on every call (the presented number goes in From)",
            file=sys.stderr,
        )
        return 2
    identity = _identity(args)
    if identity is None:
        return 2
    pai, presented = identity
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
        pai_number=pai,
        presented=presented or (),
        max_channels=args.max_channels,
        max_cps=args.max_cps,
        priority=args.priority,
        enabled=not args.disabled,
        deposit_prefix=args.deposit_prefix,
        deposit_header=args.deposit_header,
        qualify=args.qualify == "on",
        failover_only=args.failover_only,
        routes=tuple(args.route),
        identify=tuple(args.identify),
        outbound_proxy=args.outbound_proxy,
        registration_line=args.line,
    ).validate()

    async def run(services: Services) -> Applied:
        return await services.trunks.save(trunk)

    applied = run_with_services(run)
    _report(f"trunk {trunk.name} saved", applied)
    return 0 if not applied.missing else 1


def _set(args: argparse.Namespace) -> int:
    identity = _identity(args)
    if identity is None:
        return 2
    pai, presented = identity
    if args.no_presented:
        presented = ()
    if pai is None and presented is None:
        print("error: trunk set needs --pai, --presented or --no-presented", file=sys.stderr)
        return 2

    async def run(services: Services) -> Applied:
        trunk = next((t for t in await services.trunks.all() if t.name == args.name), None)
        if trunk is None:
            raise NotFound(f"no trunk named {args.name!r}")
        changed = replace(
            trunk,
            pai_number=pai if pai is not None else trunk.pai_number,
            presented=presented if presented is not None else trunk.presented,
        )
        return await services.trunks.save(changed)

    applied = run_with_services(run)
    _report(f"trunk {args.name} saved", applied)
    return 0 if not applied.missing else 1


def _report(what: str, applied: Applied) -> None:
    for warning in applied.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not applied.reloaded:
        print(f"{what}; Asterisk is not running: applied at its next start")
    elif applied.missing:
        print(f"{what}, but Asterisk did not load: {', '.join(applied.missing)} (see its log)")
    else:
        print(f"{what} and applied")


def _list(args: argparse.Namespace) -> int:
    async def run(services: Services) -> tuple[list[Trunk], list[TrunkHealth]]:
        return await services.trunks.all(), await services.trunks.health()

    trunks, health = run_with_services(run)
    seen: dict[str, list[TrunkHealth]] = {}
    for h in health:
        seen.setdefault(h.trunk, []).append(h)
    for t in trunks:
        views = seen.get(t.name, [])
        if args.json:
            row = asdict(t)
            row["password"] = "***" if t.password else None
            row["health"] = [
                {
                    "node": h.node,
                    "usable": h.usable,
                    "reason": h.reason,
                    "breaker": h.breaker,
                    "quality": h.quality,
                    "legs": h.legs,
                    "updated_at": h.updated_at.isoformat() if h.updated_at else None,
                }
                for h in views
            ]
            print(json.dumps(row))
        else:
            flags = " ".join(
                f
                for f, on in (
                    ("demo", t.demo),
                    ("disabled", not t.enabled),
                    ("failover-only", t.failover_only),
                    ("qualify-off", not t.qualify),
                )
                if on
            )
            routes = f" routes={','.join(t.routes)}" if t.routes else ""
            routes += f" pai={t.pai_number}" if t.pai_number else ""
            routes += f" presented={','.join(t.presented)}" if t.presented else ""
            state = "; ".join(
                f"{h.node}: {'usable' if h.usable else 'UNUSABLE (' + (h.reason or '?') + ')'}" for h in views
            )
            print(
                f"{t.name:<16} {t.host}:{t.port:<6} auth={t.auth:<8} format={t.number_format:<15} "
                f"channels={t.max_channels} cps={t.max_cps:g} priority={t.priority}{routes} {flags}".rstrip()
                + (f"  [{state}]" if state else "")
            )
    return 0


def _remove(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Applied:
        return await services.trunks.remove(args.name)

    _report(f"trunk {args.name} removed", run_with_services(run))
    return 0


def _apply(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Applied:
        return await services.trunks.apply()

    applied = run_with_services(run)
    _report("trunks rendered", applied)
    return 0 if not applied.missing else 1
