"""The project-owned PostgreSQL 15 cluster: Debian's binaries, our own data, port and socket dir.

It never touches a system cluster. Roles: ``vocalcast`` (the engine, owner of the database) and
``asterisk_cdr`` (Asterisk's CDR backend, INSERT on one table only) and ``vocalcast_edge`` (the Kamailio
edge's fence check, SELECT on the nodes table only; issue 19), all with generated passwords.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StackError
from engine.settings import Settings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ENGINE_ROLE = "vocalcast"
CDR_ROLE = "asterisk_cdr"
EDGE_ROLE = "vocalcast_edge"
DATABASE = "vocalcast"


@dataclass(frozen=True)
class PgPaths:
    data: Path
    run: Path
    log: Path

    @classmethod
    def of(cls, settings: Settings) -> PgPaths:
        base = settings.state_dir / "pg"
        return cls(base / "data", base / "run", base / "postgres.log")


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("no `postgres` user: install postgresql-15 (make up does)") from exc


def _as_postgres(
    argv: list[str], *, check: bool = True, timeout_s: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
        cwd="/",
    )
    if check and proc.returncode != 0:
        raise StackError(f"{Path(argv[0]).name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def ensure_cluster(settings: Settings) -> PgPaths:
    """Create the cluster once (initdb as postgres in a pre-created, postgres-owned directory)."""
    if not (PG_BIN / "initdb").exists():
        raise StackError(f"{PG_BIN / 'initdb'} not found: install postgresql-15 (make up does)")
    paths = PgPaths.of(settings)
    pg = _postgres_user()
    if (paths.data / "PG_VERSION").exists():
        return paths
    for directory in (paths.data.parent, paths.data, paths.run):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, pg.pw_uid, pg.pw_gid)
    paths.data.chmod(0o700)
    if any(paths.data.iterdir()):
        raise StackError(f"{paths.data} is not empty but holds no cluster: move it away and retry")
    _as_postgres(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(paths.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            # The superuser only over the socket as the postgres OS user; everyone else with a password.
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
        ],
        timeout_s=120,
    )
    return paths


def running_pid(settings: Settings) -> int | None:
    pidfile = PgPaths.of(settings).data / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError, PermissionError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(settings: Settings) -> int:
    paths = ensure_cluster(settings)
    pid = running_pid(settings)
    if pid is not None:
        return pid
    options = [
        f"-p {settings.pg_port}",
        f"-k {paths.run}",
        "-c listen_addresses=127.0.0.1",
        f"-c fsync={'on' if settings.pg_fsync else 'off'}",
        f"-c synchronous_commit={'on' if settings.pg_fsync else 'off'}",
        f"-c full_page_writes={'on' if settings.pg_fsync else 'off'}",
        "-c max_connections=200",
    ]
    pg = _postgres_user()
    paths.log.touch(exist_ok=True)
    os.chown(paths.log, pg.pw_uid, pg.pw_gid)
    _as_postgres(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(paths.data),
            "-l",
            str(paths.log),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        ],
        timeout_s=90,
    )
    pid = running_pid(settings)
    if pid is None:
        raise StackError(f"PostgreSQL did not start; see {paths.log}")
    return pid


def stop(settings: Settings) -> bool:
    paths = PgPaths.of(settings)
    if running_pid(settings) is None:
        return False
    _as_postgres(
        [str(PG_BIN / "pg_ctl"), "-D", str(paths.data), "-m", "fast", "-w", "-t", "60", "stop"], timeout_s=90
    )
    return True


def psql(settings: Settings, sql: str, *, database: str = "postgres") -> str:
    """Run SQL as the superuser over the cluster's own socket. The SQL goes through standard input, never
    the command line: it may hold a role's password, and every local user can read a process's argv."""
    paths = PgPaths.of(settings)
    proc = _as_postgres(
        [
            str(PG_BIN / "psql"),
            "-h",
            str(paths.run),
            "-p",
            str(settings.pg_port),
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-f",
            "-",
        ],
        stdin=sql,
    )
    return proc.stdout.strip()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ensure_roles(
    settings: Settings, engine_password: str, cdr_password: str, edge_password: str | None = None
) -> None:
    """Roles and database, with the passwords from the state dir (idempotent, passwords refreshed)."""
    roles = [(ENGINE_ROLE, engine_password), (CDR_ROLE, cdr_password)]
    if edge_password is not None:
        roles.append((EDGE_ROLE, edge_password))
    for role, password in roles:
        exists = psql(settings, f"SELECT 1 FROM pg_roles WHERE rolname = {_literal(role)}")  # noqa: S608
        verb = "ALTER" if exists == "1" else "CREATE"
        psql(settings, f"{verb} ROLE {role} LOGIN PASSWORD {_literal(password)}")
    query = f"SELECT 1 FROM pg_database WHERE datname = {_literal(DATABASE)}"  # noqa: S608 - quoted literal
    if psql(settings, query) != "1":
        psql(settings, f"CREATE DATABASE {DATABASE} OWNER {ENGINE_ROLE} ENCODING 'UTF8' TEMPLATE template0")
    psql(
        settings,
        f"REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC; "
        f"GRANT CONNECT ON DATABASE {DATABASE} TO {', '.join(role for role, _ in roles)}",
    )


def grant_cdr(settings: Settings) -> None:
    """After migrations: Asterisk's CDR role may insert into asterisk_cdr and nothing else."""
    psql(
        settings,
        f"GRANT USAGE ON SCHEMA public TO {CDR_ROLE}; "
        f"GRANT INSERT ON asterisk_cdr TO {CDR_ROLE}; "
        f"GRANT USAGE ON SEQUENCE asterisk_cdr_id_seq TO {CDR_ROLE}",
        database=DATABASE,
    )
    exists = psql(settings, f"SELECT 1 FROM pg_roles WHERE rolname = {_literal(EDGE_ROLE)}")  # noqa: S608
    if exists == "1":  # the Kamailio edge's fence check (issue 19): its epochs, nothing else
        psql(
            settings,
            f"GRANT USAGE ON SCHEMA public TO {EDGE_ROLE}; GRANT SELECT ON nodes TO {EDGE_ROLE}",
            database=DATABASE,
        )


def wait_ready(settings: Settings, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    paths = PgPaths.of(settings)
    while time.monotonic() < deadline:
        proc = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", str(paths.run), "-p", str(settings.pg_port)],
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            return
        time.sleep(0.1)
    raise StackError(f"PostgreSQL is not ready after {timeout_s:.0f} s; see {paths.log}")


def remove(settings: Settings) -> None:
    stop(settings)
    shutil.rmtree(settings.state_dir / "pg", ignore_errors=True)
