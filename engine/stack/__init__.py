"""The local stack (`vocalcast stack up|down|status`): PostgreSQL, Asterisk, demo phone, engine.

Starting twice is harmless; stopping stops what was started, by PID; status reports crashed
pieces. Every instance has its own state directory and ports, so `make up` and `make test` can
run side by side on one machine, sharing only the cached Asterisk root.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from engine.domain.trunks import Trunk, usable_trunks
from engine.errors import StackError
from engine.services.nodes import nodes_report
from engine.services.trunks import Trunks
from engine.settings import INSTANCE_FILE, PROJECT_ROOT, Settings, instance_record
from engine.stack import asterisk, postgres, procs, service_user
from engine.stack.root import RootInfo, ensure_root, read_info, root_path
from engine.store import Database, migrate
from engine.store.cdr import grant_cdr_insert
from engine.store.nodes import EDGE_ROLE, grant_edge_select
from engine.store.trunks import list_trunks, upsert_trunk

log = structlog.get_logger(__name__)

GENERATED_SECRETS = (
    "VOCALCAST_ARI_PASSWORD",
    "VOCALCAST_SECRET_KEY",
    "VOCALCAST_DB_PASSWORD",
    "VOCALCAST_CDR_DB_PASSWORD",
    "VOCALCAST_EDGE_DB_PASSWORD",
    "VOCALCAST_HEP_PASSWORD",
    "VOCALCAST_AGI_SECRET",
)
DEMO_PHONE = PROJECT_ROOT / "dialplan" / "sipp" / "demo-phone.xml"
DEMO_TRUNK = "demo"


@dataclass(frozen=True)
class UpResult:
    settings: Settings
    root: RootInfo
    started: list[str]


def ensure_state_dirs(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.state_dir.chmod(0o755)  # the postgres user must traverse it to reach its data dir
    for sub in ("run", "logs"):
        (settings.state_dir / sub).mkdir(exist_ok=True)
    settings.secrets_dir.mkdir(mode=0o700, exist_ok=True)


def ensure_secrets(settings: Settings) -> Settings:
    """Generate the secrets this instance lacks (0600 files in <state dir>/secrets), then re-read settings."""
    ensure_state_dirs(settings)
    for env in GENERATED_SECRETS:
        path = settings.secrets_dir / env
        if env in os.environ or path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return Settings.from_env(_environ_with_state_dir(settings))


def _environ_with_state_dir(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["VOCALCAST_STATE_DIR"] = str(settings.state_dir)
    return env


def demo_trunk(settings: Settings) -> Trunk:
    return Trunk(
        name=DEMO_TRUNK,
        host="127.0.0.1",
        port=settings.demo_sip_port,
        demo=True,
        max_channels=min(settings.max_channels, 100),
        max_cps=20.0,
        priority=1000,
    )


async def _prepare_database(settings: Settings) -> list[Trunk]:
    await migrate(settings.dsn)
    if not settings.database_url:
        await asyncio.to_thread(postgres.grant_cdr, settings)
    async with Database(settings.dsn, min_size=1, max_size=2) as db:
        if settings.demo:
            await upsert_trunk(db, demo_trunk(settings))
        return await list_trunks(db)


def prepare_instance(settings: Settings) -> tuple[RootInfo, list[str], list[Trunk]]:
    """What every `stack up` (one node, or a cluster: engine/stack/cluster.py) does first: the cached
    Asterisk root, the instance's records, PostgreSQL (unless the database is elsewhere) and the
    database's migrations; (the root, what it started, the trunks)."""
    started: list[str] = []
    root = ensure_root(settings)
    (settings.state_dir / "run" / "asterisk.root").write_text(str(root.path) + "\n")
    (settings.state_dir / "run" / "mode").write_text("demo\n" if settings.demo else "live\n")
    # What every later command of this instance reads for the variables its shell does not set: the
    # stack's own mode and ports (a `trunk add` from a plain shell keeps the demo trunk of a demo stack).
    (settings.state_dir / INSTANCE_FILE).write_text(instance_record(settings))
    if not settings.database_url:
        if postgres.running_pid(settings) is None:
            started.append("postgresql")
        postgres.start(settings)
        postgres.wait_ready(settings)
        postgres.ensure_roles(
            settings,
            settings.require("db_password"),
            settings.require("cdr_db_password"),
            settings.require("edge_db_password"),
        )
    trunks = asyncio.run(_prepare_database(settings))
    return root, started, trunks


def up(settings: Settings, *, engine: bool = True) -> UpResult:
    settings = ensure_secrets(settings)
    root, started, trunks = prepare_instance(settings)
    if procs.read_pid(settings.state_dir, "asterisk") is None:
        asterisk.render_config(settings, root, usable_trunks(trunks, demo=settings.demo))
        asterisk.start(settings, root)
        started.append("asterisk")
    if settings.demo and procs.read_pid(settings.state_dir, "demo-phone") is None:
        start_demo_phone(settings)
        started.append("demo-phone")
    if engine and procs.read_pid(settings.state_dir, "engine") is None:
        start_engine(settings)
        started.append("engine")
    return UpResult(settings, root, started)


# Where Debian's asterisk-modules puts the modules (the Asterisk image and the cached root alike).
IMAGE_MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"


def prepare(settings: Settings, *, module_dir: str | None = None) -> list[Trunk]:
    """What `stack up` does before it starts anything, for a node whose processes something else runs
    (containers, systemd units): the migrations, the CDR role's grant, and this node's Asterisk config
    (templates + trunks) rendered into <state dir>/asterisk. ``module_dir``: the Asterisk's modules as it
    sees them, when its root is not on this host (an image); default: the cached root's, built if missing.
    Nothing is started; secrets come from the environment (or <state dir>/secrets)."""
    ensure_state_dirs(settings)
    trunks = asyncio.run(_prepare_node_database(settings))
    usable = usable_trunks(trunks, demo=settings.demo)
    if module_dir is None:
        root = ensure_root(settings)
        (settings.state_dir / "run" / "asterisk.root").write_text(str(root.path) + "\n")
        asterisk.render_config(settings, root, usable)
    else:
        asterisk.render(settings, module_dir, usable)
    # The unit or container that runs `vocalcast serve` runs it as the service user (issue 17).
    service_user.give_paths(settings, service_user.ensure_user(settings))
    return usable


async def _prepare_node_database(settings: Settings) -> list[Trunk]:
    trunks = await _prepare_database(settings)
    if settings.database_url:
        async with Database(settings.dsn, min_size=1, max_size=1) as db:
            if not await grant_cdr_insert(db):
                log.warning("cdr_role.missing", role="asterisk_cdr", hint="create it with its password")
            if not await grant_edge_select(db):
                log.warning("edge_role.missing", role=EDGE_ROLE, hint="create it with its password (cluster)")
    return trunks


def run_asterisk(settings: Settings) -> None:
    """Asterisk of this node in the foreground in its cached root (a systemd unit's ExecStart); the
    config is the one `prepare` rendered."""
    asterisk.run_foreground(settings, ensure_root(settings))


def _open_checkout(user: service_user.ServiceUser, *, asterisk_group: bool = True) -> None:
    """A checkout under a closed directory (a clone under /root): the service user may traverse it (an
    ACL entry, traverse only), and `stack up` says so."""
    opened = service_user.open_way(user, [PROJECT_ROOT, Path(sys.prefix)], asterisk_group=asterisk_group)
    if opened:
        log.info(
            "service_user.traverse_granted",
            user=user.name,
            acl=f"u:{user.name}:--x",
            directories=[str(directory) for directory in opened],
        )


def start_demo_phone(settings: Settings) -> int:
    logs = settings.state_dir / "logs"
    # As the service user, like the engine: it writes into the logs directory that user owns (issue 17).
    user = service_user.ensure_user(settings)
    _open_checkout(user, asterisk_group=False)  # its scenario is in the checkout
    service_user.give_paths(settings, user)
    return procs.spawn(
        settings.state_dir,
        "demo-phone",
        service_user.command(user, [
            "sipp",
            "-sf",
            str(DEMO_PHONE),
            "-i",
            "127.0.0.1",
            "-p",
            str(settings.demo_sip_port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(settings.demo_sip_port + 10),
            "-aa",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(logs / "demo-phone.errors.log"),
            "-trace_logs",
            "-log_file",
            str(logs / "demo-phone.calls.log"),
        ], asterisk_group=False),
        log_path=Path(os.devnull),
    )  # fmt: skip


def start_engine(settings: Settings, *, overrides: dict[str, str] | None = None) -> int:
    """The engine as the unprivileged service user (issue 17), its ffmpeg and ffprobe with it.
    ``overrides``: variables that win over this shell's (a cluster node's own ports and name)."""
    user = service_user.ensure_user(settings)
    _open_checkout(user)
    service_user.give_paths(settings, user)
    env = service_user.environment(user, {**_environ_with_state_dir(settings), **(overrides or {})})
    pid = procs.spawn(
        settings.state_dir,
        "engine",
        service_user.command(user, [sys.executable, "-m", "engine.cli", "serve"]),
        log_path=settings.state_dir / "logs" / "engine.log",
        env=env,
        cwd=PROJECT_ROOT,
        log_owner=(user.uid, user.gid),
    )
    url = settings.health_url
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise StackError(
                f"the engine exited during start-up; see {settings.state_dir / 'logs/engine.log'}"
            )
        if http_status(url) is not None:
            return pid
        time.sleep(0.1)
    raise StackError(f"the engine did not answer on {url} within 30 s")


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - our own loopback URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def _recorded_root(settings: Settings) -> Path | None:
    marker = settings.state_dir / "run" / "asterisk.root"
    if marker.is_file():
        return Path(marker.read_text().strip())
    candidate = root_path(settings)
    return candidate if candidate.exists() else None


def down(settings: Settings) -> list[str]:
    stopped = []
    if procs.stop(settings.state_dir, "engine", timeout_s=15):
        stopped.append("engine")
    if procs.stop(settings.state_dir, "demo-phone", timeout_s=5):
        stopped.append("demo-phone")
    if asterisk.stop(settings, _recorded_root(settings)):
        stopped.append("asterisk")
    if not settings.database_url and postgres.stop(settings):
        stopped.append("postgresql")
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    root = _recorded_root(settings)
    info = read_info(root) if root else None
    mode_file = settings.state_dir / "run" / "mode"
    mode = mode_file.read_text().strip() if mode_file.is_file() else ("demo" if settings.demo else "live")
    pieces: dict[str, Any] = {}
    for name in ("asterisk", "demo-phone", "engine"):
        state = procs.status(settings.state_dir, name)
        pieces[name] = {"state": state, "pid": procs.read_pid(settings.state_dir, name)}
    if not settings.database_url:
        pg_pid = postgres.running_pid(settings)
        pieces["postgresql"] = {
            "state": "running" if pg_pid else "stopped",
            "pid": pg_pid,
            "port": settings.pg_port,
        }
    pieces["asterisk"].update(
        sip=f"{settings.sip_bind}:{settings.sip_port}",
        ari=f"127.0.0.1:{settings.ari_port}",
        rtp=f"{settings.rtp_start}-{settings.rtp_end}",
    )
    pieces["engine"]["http"] = f"http://{settings.http_host}:{settings.http_port}/"
    if mode == "demo":
        pieces["demo-phone"]["sip"] = f"127.0.0.1:{settings.demo_sip_port}"
    # The engines sharing the database (issue 19): active, draining, silent, or dead (taken over).
    nodes: list[dict[str, object]] | None = None
    if settings.database_url or pieces["postgresql"]["state"] == "running":
        try:
            nodes = asyncio.run(nodes_report(settings))
        except Exception:  # noqa: BLE001 - not reachable or not migrated yet: status still answers
            nodes = None
    manifest: list[str] = []
    if info is not None:
        manifest_file = info.path / ".vocalcast/manifest.txt"
        if manifest_file.is_file():
            manifest = manifest_file.read_text().split("\n")
    return {
        "mode": mode,
        "state_dir": str(settings.state_dir),
        "root": {
            "path": str(root) if root else None,
            "asterisk": info.asterisk_version if info else None,
            "packages": info.packages if info else 0,
            "manifest": [line for line in manifest if line],
        },
        "pieces": pieces,
        "nodes": nodes,
    }


def format_status(report: dict[str, Any], *, full_manifest: bool = False) -> str:
    demo_note = "  (DEMO: calls go to a local SIPp phone)" if report["mode"] == "demo" else ""
    lines = [
        f"mode: {report['mode']}{demo_note}",
        f"state: {report['state_dir']}",
    ]
    root = report["root"]
    lines.append(
        f"asterisk root: {root['path'] or '(not built)'}  asterisk {root['asterisk'] or '?'}, "
        f"{root['packages']} packages"
    )
    key_packages = ("asterisk ", "asterisk-modules ", "libpjproject", "libttspico")
    for line in root["manifest"]:
        if full_manifest or line.startswith(key_packages):
            lines.append(f"  {line}")
    for name, piece in report["pieces"].items():
        extra = "  ".join(f"{k}={v}" for k, v in piece.items() if k not in {"state", "pid"})
        pid = f" pid {piece['pid']}" if piece.get("pid") else ""
        lines.append(f"{name:<11} {piece['state']:<8}{pid}  {extra}".rstrip())
    for node in report.get("nodes") or []:
        lines.append(
            f"node {node['name']:<16} {node['state']:<8} epoch {node['epoch']}  "
            f"seen {node['silent_s']} s ago  open attempts {node['open_attempts']}"
        )
    return "\n".join(lines)


def status_json(settings: Settings) -> str:
    return json.dumps(status(settings), indent=2)


def after_up_messages(settings: Settings) -> list[str]:
    """Extra lines `stack up` prints: in demo mode, the demo account's login, password and personal code.

    The first demo start creates the account with 100 credits and keeps its password and personal code
    in <secrets>/demo-account-password and demo-account-code (0600, beside the instance's other
    secrets), so that every later start prints them again. If an operator has changed either since,
    the line says so and names the command that makes a new one; nothing is reset behind their back.
    """
    if not settings.demo:
        return []
    # Only demo mode needs accounts: imported here so a live `stack up` does not load them.
    from engine.errors import NotFound  # noqa: PLC0415
    from engine.store.accounts import (  # noqa: PLC0415
        account_by_email,
        authenticate,
        create_account,
        find_by_code,
    )

    email = settings.demo_account
    secret_key = settings.require("secret_key")
    password_file = settings.secrets_dir / "demo-account-password"
    code_file = settings.secrets_dir / "demo-account-code"

    def keep(path: Path, value: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        path.chmod(0o600)

    def kept(path: Path) -> str | None:
        if not path.is_file():
            return None
        return path.read_text().strip() or None

    async def ensure() -> list[str]:
        async with Database(settings.dsn, min_size=1, max_size=2) as db:
            try:
                account = await account_by_email(db, email)
            except NotFound:
                new = await create_account(
                    db, email, secret_key=secret_key, credits=100, reason="compte de démonstration"
                )
                keep(password_file, new.password)
                keep(code_file, new.code)
                return [
                    f"demo account: {new.account.email} / password {new.password} / personal code {new.code}"
                ]
            password, code = kept(password_file), kept(code_file)
            if password is None or await authenticate(db, email, password) is None:
                password = f"(changed: vocalcast account password --account {account.email})"
            found = await find_by_code(db, code, secret_key=secret_key) if code is not None else None
            if code is None or found is None or found.id != account.id:
                code = f"(changed: vocalcast account code --account {account.email} --regenerate)"
            return [f"demo account: {account.email} / password {password} / personal code {code}"]

    return asyncio.run(ensure())


async def apply_trunks(settings: Settings) -> list[Trunk]:
    """Render the trunks table into PJSIP config and reload PJSIP live when Asterisk runs (what
    `vocalcast trunk add` does, through the trunks service); the trunks this instance may use."""
    async with Database(settings.dsn, min_size=1, max_size=2) as db:
        trunks = Trunks(db, settings)
        applied = await trunks.apply()
        if applied.missing:
            raise StackError(f"Asterisk did not load the trunks {', '.join(applied.missing)}")
        return usable_trunks(await trunks.all(), demo=settings.demo)
