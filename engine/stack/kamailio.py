"""The Kamailio process of the local cluster (issue 19): docker/kamailio/kamailio.cfg, the file the image
runs, with this instance's sockets and dispatcher list (engine/telephony/edge.py renders it), and the
PostgreSQL its fence check reads (as the role vocalcast_edge; its password in Kamailio's environment only,
PGPASSWORD, never in its command line)."""

from __future__ import annotations

import subprocess
import time
from urllib.parse import urlsplit

from engine.errors import StackError
from engine.settings import PROJECT_ROOT, Settings
from engine.stack import procs
from engine.store.nodes import EDGE_ROLE
from engine.telephony.edge import Edge, kamcmd

CONFIG = PROJECT_ROOT / "docker" / "kamailio" / "kamailio.cfg"
NAME = "kamailio"


def fence_db(settings: Settings) -> str:
    """The sqlops connection of the edge's fence check (`fence=>URL`): the engines' server and database,
    the edge's role, no password."""
    dsn = urlsplit(settings.dsn)
    host, port, path = dsn.hostname or "127.0.0.1", dsn.port or 5432, dsn.path or "/vocalcast"
    return f"fence=>postgres://{EDGE_ROLE}@{host}:{port}{path}"


def command(edge: Edge, fence: str) -> list[str]:
    return [
        "kamailio",
        "-DD",
        "-E",
        "-f",
        str(CONFIG),
        "-u",
        "kamailio",
        "-g",
        "kamailio",
        "-m",
        "64",
        "-M",
        "8",
        "-A",
        f'DSLIST="{edge.dispatcher_list}"',
        "-A",
        f'CTL_SOCKET="{edge.ctl}"',
        "-A",
        f'UACREG_DB="text://{edge.registrations_db}"',
        "-A",
        f'REG_CONTACT="{edge.external}"',
        "-A",
        f"INTERNAL_LISTEN=udp:{edge.internal}",
        "-A",
        f"INTERNAL_PORT={edge.internal_port}",
        "-A",
        f"EXTERNAL_LISTEN=udp:{edge.external}",
        "-A",
        f'FENCE_DB="{fence}"',
    ]


def start(edge: Edge, settings: Settings) -> int:
    pid = procs.read_pid(edge.state_dir, NAME)
    if pid is not None:
        return pid
    log_path = edge.state_dir / "logs" / "kamailio.log"
    # Its own environment only: the fence check's password (libpq reads PGPASSWORD), none of the engine's.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PGPASSWORD": settings.require("edge_db_password")}
    pid = procs.spawn(edge.state_dir, NAME, command(edge, fence_db(settings)), log_path=log_path, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise StackError(f"Kamailio exited during start-up; see {log_path}")
        try:
            kamcmd(edge, "core.uptime", timeout_s=2)
            return pid
        except (StackError, subprocess.TimeoutExpired):
            time.sleep(0.1)
    raise StackError(f"Kamailio did not answer on {edge.ctl} within 15 s; see {log_path}")


def stop(edge: Edge) -> bool:
    return procs.stop(edge.state_dir, NAME, timeout_s=10)


def status(edge: Edge) -> dict[str, object]:
    return {
        "state": procs.status(edge.state_dir, NAME),
        "pid": procs.read_pid(edge.state_dir, NAME),
        "internal": edge.internal,
        "external": edge.external,
    }
