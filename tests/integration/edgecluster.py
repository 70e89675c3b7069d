"""The local cluster through Kamailio for the tests (issue 19): `stack up --nodes 2`'s code on the test
instance's PostgreSQL, in its own state dir beside the test instance's."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.domain.trunks import Trunk
from engine.services.trunks import Trunks
from engine.settings import Settings
from engine.stack import GENERATED_SECRETS, cluster
from engine.store import Database
from engine.telephony.edge import Cluster
from lab.sipp import SippProcess
from tests.integration.test_cluster import CLUSTER_ENV
from tests.support.carrier import traced_carrier


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


async def carrier_and_trunk(
    db: Database, settings: Settings, sipp_ports: Any, tmp_path: Path, *, channels: int, cps: float
) -> SippProcess:
    """A fresh traced SIPp carrier (not started) and the trunk `edgecarrier` toward it with its
    ``channels`` and ``cps``, added while everything runs: Kamailio's list and both media servers take
    it."""
    sip_port, media_port = sipp_ports()
    applied = await Trunks(db, settings).save(
        Trunk(
            name="edgecarrier",
            host="127.0.0.1",
            port=sip_port,
            number_format="national",
            max_channels=channels,
            max_cps=cps,
        )
    )
    assert applied.reloaded and applied.loaded == ["edgecarrier"] and applied.missing == [], applied
    return traced_carrier(sip_port, media_port, tmp_path, name="edgecarrier", record_route=True)


def asterisk_root(settings: Settings) -> Path:
    """The cached root every media server of the cluster runs in."""
    return Path((settings.state_dir / "run" / "asterisk.root").read_text().strip())


def answered_by(caller: SippProcess) -> set[int]:
    """The SIP ports of the media servers that answered a caller's calls: the Contact of each 200 to its
    INVITEs is the media server's own address (Kamailio relays it)."""
    return {
        int((m.header("Contact") or "").split(">")[0].rsplit(":", 1)[1].split(";")[0])
        for m in caller.messages()
        if m.direction == "received" and m.status == 200 and (m.header("CSeq") or "").endswith("INVITE")
    }
