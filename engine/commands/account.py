"""`vocalcast account create|show|credit|daily-cap|transfers|code|password|sender|defaults|options`:
operators' account tools.

Every subcommand names its account with ``--account EMAIL``; a password or personal code is printed
only when it is made, since the database keeps only hashes of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands import privacy
from engine.commands.runner import run_with_services
from engine.domain.accounts import Account, NewAccount, SenderNumber, check_sender
from engine.domain.commercial import PURPOSES
from engine.domain.spending import DailySpending, TransferLimits
from engine.errors import InvalidInput
from engine.services import Services
from engine.services.accounts import KEEP, Keep, NamedDefaults
from engine.settings import Settings

LEDGER_TAIL = 10


def _on_off(raw: str) -> bool:
    if raw not in {"on", "off"}:
        raise argparse.ArgumentTypeError("expected on or off")
    return raw == "on"


def _read_password(raw: str | None) -> str | None:
    if raw == "-":
        return sys.stdin.readline().rstrip("\n")
    return raw


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("account", help="customer accounts: create, credit, codes, senders, defaults")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create", help="create an account; prints its password and personal code once"
    )
    create.add_argument("--email", required=True, help="the login (case-insensitive)")
    create.add_argument("--password", help="default: generated; '-' reads it from standard input")
    create.add_argument("--credits", type=int, default=0, help="initial credits")
    create.add_argument(
        "--purpose",
        choices=PURPOSES,
        default="information",
        help="purpose of its http.php and e-mail sends (commercial: consent, hours and caps apply)",
    )
    create.add_argument(
        "--company",
        metavar="NAME",
        help="the company its commercial calls name (required with --purpose commercial)",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=_create)

    purpose = actions.add_parser(
        "purpose",
        help="the purpose of the account's http.php and e-mail sends (commercial: set its company first)",
    )
    purpose.add_argument("--account", required=True, metavar="EMAIL")
    purpose.add_argument("purpose", choices=PURPOSES)
    purpose.set_defaults(func=_purpose)

    company = actions.add_parser(
        "company", help="the company a commercial call names in its preamble (French law, issue 18)"
    )
    company.add_argument("--account", required=True, metavar="EMAIL")
    company.add_argument(
        "name",
        metavar="NAME|off",
        help="e.g. 'Acme Énergie'; off: none (not while its purpose is commercial)",
    )
    company.set_defaults(func=_company)

    show = actions.add_parser("show", help="balance, last movements, defaults, sender numbers")
    show.add_argument("--account", required=True, metavar="EMAIL")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)

    credit = actions.add_parser("credit", help="add credits (a positive whole number)")
    credit.add_argument("--account", required=True, metavar="EMAIL")
    credit.add_argument("amount", type=int, metavar="N")
    credit.add_argument("--reason", default="crédit opérateur", help="shown in the customer's ledger")
    credit.set_defaults(func=_credit)

    cap = actions.add_parser(
        "daily-cap", help="credits the account's calls may spend per day (the dialer stops there)"
    )
    cap.add_argument("--account", required=True, metavar="EMAIL")
    cap.add_argument(
        "cap",
        metavar="N|default",
        help="a whole number (0: no cap), or 'default' for VOCALCAST_DAILY_SPEND_CAP",
    )
    cap.set_defaults(func=_daily_cap)

    transfers = actions.add_parser(
        "transfers", help="the account's transfer caps (touche 9): longest transfer, transfers at once"
    )
    transfers.add_argument("--account", required=True, metavar="EMAIL")
    transfers.add_argument(
        "--max-minutes",
        metavar="N|default",
        help="longest transferred conversation, whole minutes (default: VOCALCAST_TRANSFER_MAX_S)",
    )
    transfers.add_argument(
        "--max-simultaneous",
        metavar="N|default",
        help="transfers at once (0: none; default: VOCALCAST_ACCOUNT_MAX_TRANSFERS)",
    )
    transfers.set_defaults(func=_transfers)

    code = actions.add_parser("code", help="give the account a new personal code (prints it once)")
    code.add_argument("--account", required=True, metavar="EMAIL")
    code.add_argument(
        "--regenerate",
        action="store_true",
        required=True,
        help="required: the current code cannot be shown, only a keyed hash of it is stored",
    )
    code.set_defaults(func=_code)

    password = actions.add_parser(
        "password",
        help="set a new password (generated unless given); ends its web sessions, revokes its API tokens",
    )
    password.add_argument("--account", required=True, metavar="EMAIL")
    password.add_argument("--password", help="default: generated; '-' reads it from standard input")
    password.set_defaults(func=_password)

    clients = actions.add_parser(
        "clients", help="limit http.php and the API to the account's own servers (addresses, networks)"
    )
    clients.add_argument("--account", required=True, metavar="EMAIL")
    choice = clients.add_mutually_exclusive_group()
    choice.add_argument("--allow", nargs="+", metavar="NETWORK", help="e.g. 203.0.113.7 198.51.100.0/24")
    choice.add_argument("--anywhere", action="store_true", help="no limit any more (the default)")
    clients.set_defaults(func=_clients)

    sender = actions.add_parser("sender", help="declare, verify and list sender numbers (caller IDs)")
    sender.add_argument("--account", required=True, metavar="EMAIL")
    sender.add_argument("--add", metavar="NUMBER", help="declare a number (pending until verified)")
    sender.add_argument(
        "--verify",
        nargs="?",
        const=True,
        metavar="NUMBER",
        help="verify NUMBER, or with --add the number being added; mobiles are refused (ARCEP)",
    )
    sender.add_argument("--json", action="store_true")
    sender.set_defaults(func=_sender)

    defaults = actions.add_parser("defaults", help="default send options (http.php and e-mail sends)")
    defaults.add_argument("--account", required=True, metavar="EMAIL")
    defaults.add_argument("--greeting", metavar="REF|off", help="the greeting message played first")
    defaults.add_argument("--transfer", metavar="NUMBER|off", help="where key 9 transfers the callee")
    defaults.add_argument("--sender", metavar="NUMBER|off", help="a verified sender number; off: hidden")
    defaults.add_argument("--retries", type=int, metavar="N", help="extra attempts after the first call")
    defaults.add_argument("--interval", type=int, metavar="MIN", help="minutes between two attempts")
    defaults.add_argument("--drop", type=_on_off, metavar="on|off", help="voicemail drop")
    defaults.add_argument("--json", action="store_true")
    defaults.set_defaults(func=_defaults)

    options = actions.add_parser("options", help="what the account may do")
    options.add_argument("--account", required=True, metavar="EMAIL")
    options.add_argument("--international", type=_on_off, metavar="on|off", help="foreign destinations")
    options.add_argument("--voicemail-drop", type=_on_off, metavar="on|off", help="voicemail drop allowed")
    options.set_defaults(func=_options)

    privacy.register_account_actions(actions)  # export, delete (RGPD)


# --- create, credentials --------------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    password = _read_password(args.password)

    async def run(services: Services) -> NewAccount:
        return await services.accounts.create(
            args.email,
            password=password,
            credits=args.credits,
            default_purpose=args.purpose,
            company_name=args.company,
        )

    new = run_with_services(run)
    if args.json:
        out = {
            "id": str(new.account.id),
            "email": new.account.email,
            "password": new.password,
            "code": new.code,
            "credits": new.account.balance,
            "purpose": new.account.default_purpose,
        }
        print(json.dumps(out))
    else:
        print(f"account {new.account.email} created (id {new.account.id})")
        print(f"  password:      {new.password}   (shown once)")
        print(f"  personal code: {new.code}   (shown once)")
        print(f"  credits:       {new.account.balance}")
    return 0


def _purpose(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Account:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.set_default_purpose(account.id, args.purpose)

    account = run_with_services(run)
    print(f"account {account.email}: http.php and e-mail sends are {account.default_purpose}")
    return 0


def _company(args: argparse.Namespace) -> int:
    async def run(services: Services) -> str | None:
        account = await services.accounts.by_email(args.account)
        name = None if args.name.strip().lower() == "off" else args.name
        return await services.accounts.set_company_name(account.id, name)

    name = run_with_services(run)
    said = (
        f"named {name!r}" if name else "named by no company (a commercial send is refused until one is set)"
    )
    print(f"account {args.account.strip().lower()}: commercial calls are {said}")
    return 0


def _code(args: argparse.Namespace) -> int:
    async def run(services: Services) -> str:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.new_code(account.id)

    code = run_with_services(run)
    print(f"new personal code of {args.account.strip().lower()}: {code}   (shown once; the old one is void)")
    return 0


def _password(args: argparse.Namespace) -> int:
    password = _read_password(args.password)

    async def run(services: Services) -> str:
        account = await services.accounts.by_email(args.account)
        new = await services.logins.set_password(account.id, password)
        await services.logins.settled()  # the customer's e-mail leaves before the command ends
        return new

    new = run_with_services(run)
    if password is None:
        print(f"new password of {args.account.strip().lower()}: {new}   (shown once)")
    else:
        print(f"password of {args.account.strip().lower()} changed")
    return 0


def _clients(args: argparse.Namespace) -> int:
    async def run(services: Services) -> list[str]:
        account = await services.accounts.by_email(args.account)
        if args.allow or args.anywhere:
            return await services.logins.set_allowed_networks(account.id, args.allow or [])
        return await services.logins.allowed_networks(account.id)

    networks = run_with_services(run)
    where = ", ".join(networks) if networks else "anywhere"
    print(f"http.php and the API of {args.account.strip().lower()}: from {where}")
    return 0


def _credit(args: argparse.Namespace) -> int:
    async def run(services: Services) -> tuple[Account, int]:
        account = await services.accounts.by_email(args.account)
        after = await services.accounts.credit(account.id, args.amount, reason=args.reason)
        return account, after.available

    account, available = run_with_services(run)
    print(f"{account.email}: +{args.amount} credits, {available} available")
    return 0


def _daily_cap(args: argparse.Namespace) -> int:
    raw = args.cap.strip().lower()
    if raw != "default" and not raw.isdigit():
        raise InvalidInput(
            "daily_cap_invalid", f"daily cap: expected a whole number >= 0 or 'default', got {raw!r}"
        )
    cap = None if raw == "default" else int(raw)

    async def run(services: Services) -> tuple[Account, DailySpending]:
        account = await services.accounts.by_email(args.account)
        return account, await services.accounts.set_daily_cap(account.id, cap)

    account, today = run_with_services(run)
    limit = "no cap" if today.cap is None else f"{today.cap} credits a day"
    print(f"{account.email}: {limit} ({'default' if cap is None else 'own'}); spent today: {today.spent}")
    return 0


def _cap_value(flag: str, raw: str | None, expected: str) -> int | Keep | None:
    """A cap as typed: KEEP when the option is absent, None for 'default', else a whole number."""
    if raw is None:
        return KEEP
    value = raw.strip().lower()
    if value == "default":
        return None
    if not value.isdigit():
        raise InvalidInput("cap_invalid", f"{flag}: expected {expected} or 'default', got {raw!r}")
    return int(value)


def _transfers(args: argparse.Namespace) -> int:
    if args.max_minutes is None and args.max_simultaneous is None:
        raise InvalidInput("cap_missing", "account transfers: give --max-minutes, --max-simultaneous or both")
    minutes = _cap_value("--max-minutes", args.max_minutes, "a whole number of minutes")
    at_once = _cap_value("--max-simultaneous", args.max_simultaneous, "a whole number >= 0")

    async def run(services: Services) -> tuple[Account, TransferLimits]:
        account = await services.accounts.by_email(args.account)
        try:
            limits = await services.accounts.set_transfer_limits(
                account.id, max_minutes=minutes, max_simultaneous=at_once
            )
        except InvalidInput as exc:
            flag = "--max-minutes" if exc.code == "transfer_max_invalid" else "--max-simultaneous"
            raise InvalidInput(exc.code, f"{flag}: {exc}") from exc
        return account, limits

    account, limits = run_with_services(run)
    print(f"{account.email}: {_transfer_caps(limits, Settings.from_env(), of='transfers of ')}")
    return 0


def _transfer_caps(limits: TransferLimits, settings: Settings, *, of: str = "") -> str:
    """'at most 5 min (own), 2 at once (default)': what the dialer applies to the account's transfers."""
    if limits.max_s is None:
        minutes = f"{int(settings.transfer_max_s // 60)} min (default)"
    else:
        minutes = f"{int(min(limits.max_s, settings.transfer_max_s) // 60)} min (own)"
    if limits.max_simultaneous is None:
        at_once = f"{settings.account_max_transfers} at once (default)"
    else:
        none = ": no transfer" if limits.max_simultaneous == 0 else ""
        at_once = f"{limits.max_simultaneous} at once (own{none})"
    return f"{of}at most {minutes}, {at_once}"


def _options(args: argparse.Namespace) -> int:
    async def run(services: Services) -> Account:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.set_options(
            account.id,
            allow_international=args.international,
            allow_voicemail_drop=args.voicemail_drop,
        )

    account = run_with_services(run)
    print(
        f"{account.email}: international {_word(account.allow_international)}, "
        f"voicemail drop {_word(account.allow_voicemail_drop)}"
    )
    return 0


def _word(flag: bool) -> str:
    return "on" if flag else "off"


# --- sender numbers -------------------------------------------------------------------------------------


def _sender(args: argparse.Namespace) -> int:
    to_verify: str | None
    if args.verify is True:
        if args.add is None:
            raise InvalidInput("sender_missing", "--verify without a number needs --add NUMBER")
        to_verify = args.add
    else:
        to_verify = args.verify
    if args.add is not None:
        check = check_sender(args.add)  # refuse before touching the database
        if check.mobile_forbidden:
            print(
                f"warning: {check.e164} is a mobile number: ARCEP forbids presenting it from automated "
                "calls; it stays pending and cannot be verified",
                file=sys.stderr,
            )

    async def run(services: Services) -> list[dict[str, Any]]:
        account = await services.accounts.by_email(args.account)
        if args.add is not None:
            number, _ = await services.accounts.declare_sender(account.id, args.add)
            print(f"declared {number.e164} ({number.status})")
        if to_verify is not None:
            number = await services.accounts.verify_sender(account.id, to_verify)
            print(f"verified {number.e164}")
        return [_sender_json(s) for s in await services.accounts.senders(account.id)]

    senders = run_with_services(run)
    if args.add is None and to_verify is None:
        for s in senders:
            if args.json:
                print(json.dumps(s))
            else:
                notes = " ".join(
                    n
                    for n, on in (("mobile", s["is_mobile"]), ("arcep-range", s["in_automated_range"]))
                    if on
                )
                print(f"{s['e164']:<16} {s['status']:<9} {notes}".rstrip())
    return 0


def _sender_json(s: SenderNumber) -> dict[str, Any]:
    return {
        "id": s.id,
        "e164": s.e164,
        "status": s.status,
        "is_mobile": s.is_mobile,
        "in_automated_range": s.in_automated_range,
        "declared_at": s.declared_at.isoformat(),
        "verified_at": s.verified_at.isoformat() if s.verified_at else None,
    }


# --- default send options -------------------------------------------------------------------------------


def _defaults_json(d: NamedDefaults) -> dict[str, Any]:
    """Defaults as the customer knows them: the greeting by reference, the sender by number."""
    return {
        "greeting_enabled": d.greeting_enabled,
        "greeting_ref": d.greeting_ref,
        "transfer_number": d.transfer_number,
        "sender_number": d.sender_number,
        "retries": d.retries,
        "retry_interval_min": d.retry_interval_s // 60,
        "voicemail_drop": d.voicemail_drop,
    }


def _parse_ref(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput("ref_invalid", f"expected a message reference (1, 2, …) or off, got {raw!r}")
    return int(raw)


def _defaults(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.greeting is not None:
        changes["greeting_ref"] = None if args.greeting == "off" else _parse_ref(args.greeting)
    if args.transfer is not None:
        changes["transfer_number"] = None if args.transfer == "off" else args.transfer
    if args.sender is not None:
        changes["sender_number"] = None if args.sender == "off" else args.sender
    if args.retries is not None:
        changes["retries"] = args.retries
    if args.interval is not None:
        changes["retry_interval_s"] = args.interval * 60
    if args.drop is not None:
        changes["voicemail_drop"] = args.drop

    async def run(services: Services) -> NamedDefaults:
        account = await services.accounts.by_email(args.account)
        return await services.accounts.change_defaults(account.id, **changes)

    shown = _defaults_json(run_with_services(run))
    if args.json:
        print(json.dumps(shown))
    else:
        for key, value in shown.items():
            print(f"{key:<20} {_show_value(value)}")
    return 0


def _show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return _word(value)
    return str(value)


# --- show -----------------------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    async def run(services: Services) -> dict[str, Any]:
        account = await services.accounts.by_email(args.account)
        entries = await services.accounts.ledger(account.id, limit=LEDGER_TAIL)
        messages = await services.messages.list(account.id)
        limits = await services.accounts.transfer_limits(account.id)
        return {
            "id": str(account.id),
            "email": account.email,
            "created_at": account.created_at.isoformat(),
            "options": {
                "international": account.allow_international,
                "voicemail_drop": account.allow_voicemail_drop,
            },
            "credits": {"available": account.balance, "reserved": account.reserved},
            # The account's own caps (None: the settings'), as `account daily-cap` and `transfers` set them.
            "limits": {
                "daily_cap": await services.accounts.daily_cap(account.id),
                "transfer_max_minutes": None if limits.max_s is None else int(limits.max_s // 60),
                "max_transfers": limits.max_simultaneous,
            },
            "ledger": [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "kind": e.kind,
                    "amount": e.amount,
                    "held": e.held,
                    "reason": e.reason,
                    "send_id": str(e.send_id) if e.send_id else None,
                }
                for e in entries
            ],
            "defaults": _defaults_json(await services.accounts.defaults(account)),
            "senders": [_sender_json(s) for s in await services.accounts.senders(account.id)],
            "messages": len(messages),
        }

    report = run_with_services(run)
    if args.json:
        print(json.dumps(report))
        return 0
    credits = report["credits"]
    print(f"{report['email']}  (id {report['id']}, created {report['created_at'][:10]})")
    print(f"  credits:   {credits['available']} available, {credits['reserved']} reserved")
    print(
        f"  options:   international {_word(report['options']['international'])}, "
        f"voicemail drop {_word(report['options']['voicemail_drop'])}"
    )
    print(f"  messages:  {report['messages']}")
    settings = Settings.from_env()
    limits = report["limits"]
    own_cap = limits["daily_cap"]
    if own_cap is None:
        default = settings.daily_spend_cap
        daily = f"{default} credits a day (default)" if default else "no cap (default)"
    else:
        daily = f"{own_cap} credits a day (own)" if own_cap else "no cap (own)"
    print(f"  daily cap: {daily}")
    minutes = limits["transfer_max_minutes"]
    caps = TransferLimits(None if minutes is None else minutes * 60.0, limits["max_transfers"])
    print(f"  transfers: {_transfer_caps(caps, settings)}")
    print("  defaults:  " + ", ".join(f"{k}={_show_value(v)}" for k, v in report["defaults"].items()))
    for s in report["senders"]:
        print(f"  sender:    {s['e164']} {s['status']}{' (mobile)' if s['is_mobile'] else ''}")
    for e in report["ledger"]:
        print(f"  {e['at'][:19]}  {e['kind']:<8} {e['amount']:+d}  {e['reason']}")
    return 0
