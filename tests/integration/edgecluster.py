"""The local cluster through Kamailio for the tests (issue 19): `stack up --nodes 2`'s code on the test
instance's PostgreSQL, in its own state dir beside the test instance's."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from engine.settings import Settings
from engine.stack import GENERATED_SECRETS, cluster
from engine.store import Database
from engine.telephony.edge import Cluster
from lab.sipp import SippProcess
from tests.integration.test_cluster import CLUSTER_ENV
from tests.integration.test_dialer import CALLEES


def edge_cluster(stack_settings: Settings, *, max_channels: int) -> Iterator[tuple[Settings, Cluster]]:
    """Kamailio, two media servers and two engines (short cluster timers), every table emptied first: a
    module fixture's body. Its secrets are the test instance's (one database, one CDR role); its tests
    must not use the `db` fixture (it would truncate the engines' node rows under them)."""
    state = Path(f"{stack_settings.state_dir}-cluster")
    (state / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
    for env in GENERATED_SECRETS:
        shutil.copyfile(stack_settings.secrets_dir / env, state / "secrets" / env)
    saved = dict(os.environ)
    os.environ.update(
        {
            "VOCALCAST_STATE_DIR": str(state),
            "VOCALCAST_DATABASE_URL": stack_settings.dsn,
            "VOCALCAST_MAX_CHANNELS": str(max_channels),  # each node's; its RTP range is sized by it
            "VOCALCAST_DEMO": "0",
        }
    )
    settings = Settings.from_env()
    asyncio.run(_empty_tables(settings))
    try:
        built, _ = cluster.up(settings, 2, extra={**CLUSTER_ENV, "VOCALCAST_RING_TIMEOUT_S": "3"})
        yield settings, built
    finally:
        try:
            cluster.down(settings)
        finally:
            os.environ.clear()
            os.environ.update(saved)


async def _empty_tables(settings: Settings) -> None:
    async with Database(settings.dsn, min_size=1, max_size=1) as db:
        tables = await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        names = ", ".join(f'"{r["tablename"]}"' for r in tables)
        await db.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def via_ports(sipp: SippProcess) -> tuple[set[str], set[int]]:
    """Of every new call the carrier received: the top Via's address (who sent it to the carrier) and
    the port in the second Via (the media server behind it)."""
    tops: set[str] = set()
    behind: set[int] = set()
    for m in sipp.messages():
        if m.direction == "received" and m.method == "INVITE":
            vias = [v for value in m.header_values("Via") for v in value.split(",")]
            tops.add(vias[0].split()[1].split(";")[0])
            behind.add(int(vias[1].split()[1].split(";")[0].rsplit(":", 1)[1]))
    return tops, behind


def callees_behind_a_proxy(workdir: Path) -> Path:
    """tests/sipp/dialer_callees.xml keeping Kamailio in the dialog: Record-Route copied into its 180 and
    200, as a real carrier does (SIPp's scenario does not), so BYEs pass through Kamailio too."""
    scenario = workdir / "callees_rr.xml"
    text = CALLEES.read_text()
    anchor = "[last_CSeq:]\n      Contact:"
    assert text.count(anchor) == 2
    scenario.write_text(text.replace(anchor, "[last_CSeq:]\n      [last_Record-Route:]\n      Contact:"))
    return scenario


def answered_by(caller: SippProcess) -> set[int]:
    """The SIP ports of the media servers that answered a caller's calls: the Contact of each 200 to its
    INVITEs is the media server's own address (Kamailio relays it)."""
    return {
        int((m.header("Contact") or "").split(">")[0].rsplit(":", 1)[1].split(";")[0])
        for m in caller.messages()
        if m.direction == "received" and m.status == 200 and (m.header("CSeq") or "").endswith("INVITE")
    }
