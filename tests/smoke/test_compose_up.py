"""Smoke run of the production compose file (issue 19), for real: `make smoke`, not `make test` (it builds
images and takes minutes the first time; tests/conftest.py leaves this directory out unless
VOCALCAST_SMOKE=1).

Debian's podman (runc, explicit ulimits: /work/shared/notes/media-and-containers.md) serves the Docker
API on a socket of its own; Debian's docker-compose 1.29 brings docker/compose.yml up through it with one
node (PostgreSQL, Kamailio, node1-prepare, asterisk1, engine1), one call goes engine1 -> asterisk1 ->
Kamailio -> a SIPp carrier on loopback, and everything is taken down. No registry: the images come from
tarballs — the Asterisk root `vocalcast stack` builds (the very root `make up` runs), and a Debian 12 root
made by mmdebstrap with the runtime packages (engine, Kamailio, PostgreSQL). What differs from a
production build is said in `_override`: the engine runs this checkout's .venv (mounted) rather than a
pip install, PostgreSQL is Debian's behind a stand-in of the official image's entrypoint, and the
ports are moved into this run's block.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from engine.settings import PROJECT_ROOT, Settings
from engine.stack import http_status
from engine.stack.root import ensure_root, host_mirror
from tests.conftest import PORT_BASE
from tests.conftest import test_environ as stack_environ

DOCKER = PROJECT_ROOT / "docker"
SMOKE = Path(__file__).parent
STATE = Path(f"/var/lib/vocalcast-smoke-{PORT_BASE}")
PROJECT = f"vcsmoke{PORT_BASE}"
TAG = "smoke"
RUNTIME_PACKAGES = (
    "python3",
    "python3-venv",
    "ffmpeg",
    "curl",
    "logrotate",
    "kamailio",
    "kamailio-postgres-modules",
    "postgresql-15",
)
# This run's ports (BASE+1400..1499 is the deployment tests' block).
PG_PORT = PORT_BASE + 1432
EDGE_INTERNAL, EDGE_EXTERNAL = PORT_BASE + 1480, PORT_BASE + 1460
CARRIER = PORT_BASE + 1490
NODE1 = {
    "VOCALCAST_HTTP_PORT": PORT_BASE + 1481,
    "VOCALCAST_SMTP_PORT": PORT_BASE + 1425,
    "VOCALCAST_SIP_PORT": PORT_BASE + 1470,
    "VOCALCAST_RTP_START": PORT_BASE + 1600,
    "VOCALCAST_RTP_END": PORT_BASE + 1699,
    "VOCALCAST_ARI_PORT": PORT_BASE + 1488,
    "VOCALCAST_AGI_PORT": PORT_BASE + 1473,
    "VOCALCAST_HEP_PORT": PORT_BASE + 1499,
    "VOCALCAST_MEDIA_HTTP_PORT": PORT_BASE + 1485,
}


def _podman_env() -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "CONTAINERS_CONF": str(STATE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(STATE / "storage.conf"),
    }


def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, **kw: object) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=timeout, env=env or _podman_env(), **kw
    )  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr[-3000:]}"
    return str(proc.stdout)


def _podman_config() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    # Required here (lab note): runc, not crun (hybrid cgroups), and ulimits this VM allows.
    (STATE / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    (STATE / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{STATE}/run"\ngraphroot = "{STATE}/storage"\n'
    )


def _has_image(name: str) -> bool:
    return (
        subprocess.run(
            ["podman", "image", "exists", name], env=_podman_env(), check=False, capture_output=True
        ).returncode
        == 0
    )


def _import_tree(tree: Path, name: str) -> None:
    tar = subprocess.Popen(
        ["tar", "-C", str(tree), "--exclude=./srv/*", "--exclude=./proc/*", "--exclude=./dev/*", "-c", "."],
        stdout=subprocess.PIPE,
    )
    assert tar.stdout is not None
    with tar.stdout:  # closed here: an open pipe is a ResourceWarning, an error under pytest's settings
        _run(["podman", "import", "-", name], stdin=tar.stdout)
    assert tar.wait() == 0


def _build(name: str, containerfile: str) -> None:
    file = STATE / f"{name.rsplit('/', 1)[-1].replace(':', '-')}.Containerfile"
    file.write_text(containerfile)
    # --network host: a RUN step on the default network would add a bridge and iptables chains to the host.
    _run(
        [
            "podman",
            "build",
            "--pull=never",
            "--network",
            "host",
            "-q",
            "-f",
            str(file),
            "-t",
            name,
            str(PROJECT_ROOT),
        ]
    )


def _images(settings: Settings) -> None:
    """The four images compose.yml names, built without a registry (cached by their inputs)."""
    root = ensure_root(settings)
    asterisk_root = f"localhost/vocalcast/asterisk-root:{root.key}"
    if not _has_image(asterisk_root):
        _import_tree(root.path, asterisk_root)
    key = hashlib.sha256(json.dumps([RUNTIME_PACKAGES, "bookworm"]).encode()).hexdigest()[:12]
    runtime = f"localhost/vocalcast/runtime:{key}"
    if not _has_image(runtime):
        tree = settings.cache_dir / f"smoke-runtime-{key}"
        if not (tree / "usr/bin/python3").exists():
            _run(
                [
                    "mmdebstrap",
                    "--mode=root",
                    "--variant=apt",
                    '--aptopt=Acquire::Check-Valid-Until "false"',
                    f"--include={','.join(RUNTIME_PACKAGES)}",
                    "--dpkgopt=path-exclude=/usr/share/man/*",
                    "--dpkgopt=path-exclude=/usr/share/doc/*",
                    "--dpkgopt=path-exclude=/usr/share/locale/*",
                    "bookworm",
                    str(tree),
                    host_mirror(settings),
                ],
                timeout=1800,
            )
        _import_tree(tree, runtime)
    kamailio_entrypoint = next(
        line
        for line in (DOCKER / "kamailio" / "Dockerfile").read_text().splitlines()
        if line.startswith("ENTRYPOINT")
    )
    _build(
        f"localhost/vocalcast/asterisk:{TAG}",
        f"FROM {asterisk_root}\n"
        "COPY docker/asterisk/entrypoint.sh docker/asterisk/healthcheck.sh /usr/local/bin/\n"
        'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]\n',
    )
    _build(
        f"localhost/vocalcast/engine:{TAG}",
        f"FROM {runtime}\nENV LANG=C.UTF-8 VOCALCAST_STATE_DIR=/var/lib/vocalcast\n"
        f'ENTRYPOINT ["{PROJECT_ROOT}/.venv/bin/vocalcast"]\nCMD ["serve"]\n',
    )
    _build(
        f"localhost/vocalcast/kamailio:{TAG}",
        f"FROM {runtime}\n"
        "RUN mkdir -p /run/kamailio /etc/vocalcast/kamailio && chown kamailio:kamailio /run/kamailio\n"
        "COPY docker/kamailio/kamailio.cfg docker/kamailio/dispatcher.list /etc/vocalcast/kamailio/\n"
        f"{kamailio_entrypoint}\n",
    )
    _build(f"localhost/vocalcast/postgres:{TAG}", f"FROM {runtime}\n")
    _run(["podman", "image", "prune", "-f"])  # the layers of the previous builds


def _override(env_dir: Path) -> Path:
    """What this run changes in compose.yml: images, ports, this checkout's code, the carrier."""
    dispatcher = env_dir / "dispatcher.list"
    dispatcher.write_text(
        f"1 sip:127.0.0.1:{CARRIER} 0 0 duid=carrier\n"
        f"2 sip:127.0.0.1:{NODE1['VOCALCAST_SIP_PORT']} 8 0 duid=media1\n"
    )
    node_env = {name: str(port) for name, port in NODE1.items()} | {
        "VOCALCAST_MAX_CHANNELS": "20",
        # http media transport (compose.yml): the moved media listener and ARI.
        "VOCALCAST_MEDIA_URL": f"http://127.0.0.1:{NODE1['VOCALCAST_MEDIA_HTTP_PORT']}",
        "VOCALCAST_MEDIA_SERVERS": f"node1=http://127.0.0.1:{NODE1['VOCALCAST_ARI_PORT']}",
    }
    code = f"{PROJECT_ROOT}:{PROJECT_ROOT}:ro"
    override = {
        "services": {
            "postgres": {
                "image": f"localhost/vocalcast/postgres:{TAG}",
                "entrypoint": ["/smoke/postgres-entrypoint.sh"],
                "command": ["postgres", "-c", "listen_addresses=127.0.0.1", "-c", f"port={PG_PORT}"],
                "volumes": [f"{SMOKE}/postgres-entrypoint.sh:/smoke/postgres-entrypoint.sh:ro"],
                "healthcheck": {"test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(PG_PORT)]},
            },
            "kamailio": {
                "command": [
                    "-m",
                    "32",
                    "-M",
                    "4",
                    "-A",
                    f"EXTERNAL_LISTEN=udp:127.0.0.1:{EDGE_EXTERNAL}",
                    "-A",
                    f"INTERNAL_LISTEN=udp:127.0.0.1:{EDGE_INTERNAL}",
                    "-A",
                    f"INTERNAL_PORT={EDGE_INTERNAL}",
                    "-A",
                    f'FENCE_DB="fence=>postgres://vocalcast_edge@127.0.0.1:{PG_PORT}/vocalcast"',
                ],
                "volumes": [f"{dispatcher}:/etc/vocalcast/kamailio/dispatcher.list:ro"],
            },
            # This VM refuses podman's nproc default once a service names its own ulimits (lab note).
            "asterisk1": {"ulimits": {"nproc": 4096}},
            "node1-prepare": {"environment": node_env, "volumes": [code]},
            "engine1": {
                "environment": node_env,
                "volumes": [code],
                "healthcheck": {
                    "test": [
                        "CMD",
                        "curl",
                        "-fsS",
                        "-o",
                        "/dev/null",
                        f"http://127.0.0.1:{NODE1['VOCALCAST_HTTP_PORT']}/healthz",
                    ]
                },
            },
        }
    }
    path = env_dir / "compose.smoke.yml"
    path.write_text(yaml.safe_dump(override))
    return path


def _env_files(env_dir: Path) -> None:
    secrets = {
        "VOCALCAST_SECRET_KEY": "smoke-secret-key-0123456789abcdef",
        "VOCALCAST_ARI_PASSWORD": "smoke-ari",
        "VOCALCAST_HEP_PASSWORD": "smoke-hep",
        "VOCALCAST_AGI_SECRET": "smoke-agi",
        "VOCALCAST_CDR_DB_PASSWORD": "smoke-cdr",
        "VOCALCAST_DATABASE_URL": f"postgresql://vocalcast:smoke-db@127.0.0.1:{PG_PORT}/vocalcast",
    }
    (env_dir / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
    (env_dir / "postgres.env").write_text(
        "POSTGRES_PASSWORD=smoke-pg\nVOCALCAST_DB_PASSWORD=smoke-db\nVOCALCAST_CDR_DB_PASSWORD=smoke-cdr\n"
        "VOCALCAST_EDGE_DB_PASSWORD=smoke-edge\n"
    )
    (env_dir / "kamailio.env").write_text("PGPASSWORD=smoke-edge\n")


@pytest.fixture
def podman_socket() -> Iterator[str]:
    _podman_config()
    socket = STATE / "podman.sock"
    socket.unlink(missing_ok=True)
    with (STATE / "podman-service.log").open("w") as log:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{socket}"],
            env=_podman_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 20
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=20)


def _health_pump(stop: threading.Event) -> None:
    """Podman runs healthchecks from systemd timers; without systemd as PID 1 nobody runs them, so this
    run does what the timer would (`podman healthcheck run`) for every container of the project."""
    while not stop.is_set():
        names = subprocess.run(
            [
                "podman",
                "ps",
                "--filter",
                f"label=com.docker.compose.project={PROJECT}",
                "--format",
                "{{.Names}}",
            ],
            capture_output=True,
            text=True,
            check=False,
            env=_podman_env(),
        ).stdout.split()
        for name in names:
            subprocess.run(
                ["podman", "healthcheck", "run", name], capture_output=True, check=False, env=_podman_env()
            )
        stop.wait(1)


def _wait_healthy(container: str, timeout_s: float = 120) -> None:
    """compose waits for a service's health only when another depends on it: not for the last engine."""
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = _run(["podman", "inspect", "--format", "{{.State.Health.Status}}", container]).strip()
        if state == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{container} is {state!r} after {timeout_s} s")


def test_compose_up_one_node_places_a_call_through_kamailio(podman_socket: str, tmp_path: Path) -> None:
    settings = Settings.from_env(stack_environ())
    _images(settings)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    _env_files(env_dir)
    override = _override(env_dir)
    compose_env = {
        "PATH": os.environ["PATH"],
        "DOCKER_HOST": podman_socket,
        "VOCALCAST_ENV_DIR": str(env_dir),
        "VOCALCAST_TAG": TAG,
        "COMPOSE_HTTP_TIMEOUT": "300",
    }
    compose = ["docker-compose", "-p", PROJECT, "-f", str(DOCKER / "compose.yml"), "-f", str(override)]
    carrier_log = tmp_path / "carrier.messages.log"
    carrier = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(PROJECT_ROOT / "dialplan/sipp/demo-phone.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(CARRIER),
            "-mp",
            str(CARRIER + 2),
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(carrier_log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    pump = threading.Thread(target=_health_pump, args=(stop,), daemon=True)
    pump.start()
    try:
        _run([*compose, "up", "-d", "--no-build", "kamailio", "engine1"], env=compose_env, timeout=600)
        engine = f"{PROJECT}_engine1_1"
        vocalcast = ["podman", "exec", engine, f"{PROJECT_ROOT}/.venv/bin/vocalcast"]
        _run(
            [
                *vocalcast,
                "trunk",
                "add",
                "edge",
                "--host",
                "127.0.0.1",
                "--port",
                str(EDGE_INTERNAL),
                "--pai",
                "0162000000",
            ]
        )
        _wait_healthy(engine)  # a live engine without a usable trunk answers 503 on /healthz
        probe = subprocess.run(
            [*vocalcast, "call", "probe", "0100000001", "--trunk", "edge"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=_podman_env(),
        )
        # A library message (the engines' `media` volume), played as a send plays it: asterisk1 mounts
        # no library, so it can only fetch it from engine1's media listener (http transport).
        _run([*vocalcast, "account", "create", "--email", "smoke@example.fr"])
        added = _run(
            [
                *vocalcast,
                "message",
                "add",
                "--account",
                "smoke@example.fr",
                "--json",
                str(PROJECT_ROOT / "sounds/fr/greeting_default.wav"),
            ]
        )
        message_probe = subprocess.run(
            [
                *vocalcast,
                "call",
                "probe",
                "0100000002",
                "--trunk",
                "edge",
                "--account",
                "smoke@example.fr",
                "--message",
                str(json.loads(added)["ref"]),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=_podman_env(),
        )
        media_cache = _run(["podman", "exec", engine, "ls", "/var/lib/vocalcast/asterisk/cache"]).split()
        ps = _run([*compose, "ps"], env=compose_env)
        # http media transport: the engine's media listener answers (403 unsigned) and no library is
        # mounted into the Asterisk container.
        media_status = http_status(f"http://127.0.0.1:{NODE1['VOCALCAST_MEDIA_HTTP_PORT']}/m/")
        asterisk_mounts = json.loads(
            _run(["podman", "inspect", "--format", "{{json .Mounts}}", f"{PROJECT}_asterisk1_1"])
        )
    finally:
        stop.set()
        pump.join(timeout=30)
        logs = subprocess.run(
            [*compose, "logs", "--no-color"], check=False, env=compose_env, capture_output=True, text=True
        )
        (STATE / "compose.log").write_text(logs.stdout + logs.stderr)  # kept for a failed run
        down = subprocess.run(
            [*compose, "down", "-v", "--timeout", "10"],
            env=compose_env,
            capture_output=True,
            text=True,
            check=False,
        )
        carrier.terminate()
        carrier.wait(timeout=10)
    (STATE / "carrier.messages.log").write_text(carrier_log.read_text())  # kept for a failed run
    (STATE / "compose-ps.txt").write_text(ps)
    assert down.returncode == 0, down.stderr
    result = json.loads(probe.stdout)
    assert result["answered"] and result["played_to_end"] and not result["error"], result
    assert probe.returncode == 0, probe.stderr
    # The carrier got the call from Kamailio's external socket (its Via and Record-Route, the R-URI
    # rewritten to the carrier by ds_select_domain), with the trunk header stripped.
    invite = carrier_log.read_text().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
    assert invite.startswith(f"0100000001@127.0.0.1:{CARRIER} SIP/2.0"), invite
    assert f"Via: SIP/2.0/UDP 127.0.0.1:{EDGE_EXTERNAL};" in invite, invite
    assert f"Record-Route: <sip:127.0.0.1:{EDGE_EXTERNAL};" in invite, invite
    assert "X-VC-Trunk" not in invite
    played = json.loads(message_probe.stdout)
    assert played["answered"] and played["played_to_end"] and not played["error"], played
    assert [name for name in media_cache if name.startswith("bucket-")], media_cache  # fetched over HTTP
    assert media_status == 403
    assert "/srv/vocalcast" in {m.get("Destination") for m in asterisk_mounts}, asterisk_mounts
    assert not [
        m
        for m in asterisk_mounts
        if str(m.get("Name", "")).endswith("_media") or str(m.get("Destination", "")).endswith("/media")
    ], asterisk_mounts
    for service in ("postgres", "kamailio", "asterisk1", "engine1"):
        line = next(line for line in ps.splitlines() if f"_{service}_1 " in line)
        assert "(healthy)" in line, ps
    assert "Exit 0" in next(line for line in ps.splitlines() if "_node1-prepare_1 " in line), ps
