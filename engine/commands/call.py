"""`vocalcast call probe`: one call through a trunk, to check it end to end (audio, DTMF, hang-up)."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from engine.errors import InvalidInput, NoTrunk
from engine.media.paths import prompt_uri
from engine.services.dialing.membership import EPOCH_HEADER, NODE_HEADER
from engine.services.messages import Messages, playback_uri
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import account_by_email
from engine.store.nodes import list_nodes
from engine.store.trunks import list_trunks
from engine.telephony.ari import AriClient, events_task
from engine.telephony.probe import ProbeResult, probe_call
from engine.telephony.stasis import StasisRouter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("call", help="diagnostic calls")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    probe = actions.add_parser(
        "probe", help="call NUMBER through a trunk, play a prompt, report what happened"
    )
    probe.add_argument("number", help="the number exactly as the trunk expects it on the wire")
    probe.add_argument("--trunk", required=True)
    probe.add_argument("--sound", default="greeting_default", help="a prompt name from sounds/fr")
    probe.add_argument(
        "--message",
        type=int,
        metavar="REF",
        help="play this message of --account instead, as a send plays it (its media URL in http transport)",
    )
    probe.add_argument("--account", metavar="EMAIL", help="the account of --message")
    probe.set_defaults(func=_probe)


def _probe(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> ProbeResult:
        media = prompt_uri(settings, args.sound)
        async with Database(settings.dsn, min_size=1, max_size=1) as db:
            trunks = {t.name: t for t in await list_trunks(db)}
            # Through a Kamailio edge (issue 19) a call must carry its node's current epoch: this host's.
            epochs = {n.name: n.epoch for n in await list_nodes(db)} if settings.cluster else {}
            if args.message is not None:
                if not args.account:
                    raise InvalidInput("account_missing", "--message needs --account")
                account = await account_by_email(db, args.account)
                media = playback_uri(settings, await Messages(db, settings).get(account.id, args.message))
        trunk = trunks.get(args.trunk)
        if trunk is None or not trunk.enabled or (trunk.demo and not settings.demo):
            raise NoTrunk(f"no usable trunk named {args.trunk!r} (demo trunks need VOCALCAST_DEMO=1)")
        router = StasisRouter()
        async with (
            AriClient(
                host="127.0.0.1",
                port=settings.ari_port,
                user=settings.ari_user,
                password=settings.require("ari_password"),
                app=settings.app_name + "-probe",
            ) as ari,
            events_task(ari, router.dispatch),
        ):
            await ari.wait_ready(10)
            epoch = epochs.get(settings.node_name)
            if epoch is not None:
                headers = {NODE_HEADER: settings.node_name, EPOCH_HEADER: str(epoch)}
                ari.originate_headers = lambda: headers
            return await probe_call(
                ari,
                router,
                endpoint=trunk.dial_string(args.number),
                media=media,
                ring_timeout_s=settings.ring_timeout_s,
                codecs=trunk.codecs,
            )

    result = asyncio.run(run())
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.answered and result.played_to_end and not result.error else 1
