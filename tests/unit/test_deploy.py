"""The production deployment (issue 19): docker/ (compose file, images, Kamailio edge) and deploy/systemd/,
checked by the tools that read them — Debian 12's docker-compose 1.29, hadolint, Kamailio 5.6 itself,
systemd-analyze — and held to the commands the local stack runs. Each validator is also shown failing
on a broken copy, so a green run means the files were really read."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from engine.domain.trunks import Trunk
from engine.settings import PROJECT_ROOT, Settings
from engine.stack import IMAGE_MODULE_DIR, asterisk, service_user
from engine.stack.root import PACKAGES
from engine.telephony.edge import UACREG_VERSION, Edge, MediaServer, render_dispatcher, render_registrations
from tests.conftest import PORT_BASE
from tests.conftest import test_environ as stack_environ

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
UNITS = PROJECT_ROOT / "deploy" / "systemd"
KAMAILIO_CFG = DOCKER / "kamailio" / "kamailio.cfg"
DISPATCHER_LIST = DOCKER / "kamailio" / "dispatcher.list"
CLUSTER_JSON = DOCKER / "kamailio" / "cluster.json"
CLUSTER_TOOLS = ("edge-prepare", "admin")  # the cluster home's services: every node's trunks, Kamailio's list
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"


# --- docker-compose ------------------------------------------------------------------------------------
def _compose_config(compose: Path, env_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "VOCALCAST_ENV_DIR": str(env_dir)}
    return subprocess.run(
        ["docker-compose", "-f", str(compose), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


@pytest.fixture
def env_dir(tmp_path: Path) -> Path:
    """The env files an operator makes from the examples (the repository holds only the examples)."""
    target = tmp_path / "env"
    target.mkdir()
    for example in (DOCKER / "env").glob("*.env.example"):
        shutil.copyfile(example, target / example.name.removesuffix(".example"))
    return target


def test_docker_compose_accepts_the_compose_file(env_dir: Path) -> None:
    proc = _compose_config(COMPOSE, env_dir)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    services = config["services"]
    assert set(services) == {
        "postgres",
        "kamailio",
        "edge-prepare",
        "admin",
        *(f"node{n}-prepare" for n in (1, 2)),
        *(f"asterisk{n}" for n in (1, 2)),
        *(f"engine{n}" for n in (1, 2)),
    }
    assert any(str(v).startswith("pgdata:/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    for n in (1, 2):
        engine = services[f"engine{n}"]
        port = engine["environment"]["VOCALCAST_HTTP_PORT"]
        assert engine["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/healthz"
        assert engine["depends_on"] == {f"asterisk{n}": {"condition": "service_healthy"}}
        assert services[f"asterisk{n}"]["healthcheck"]["test"] == ["CMD", "/usr/local/bin/healthcheck.sh"]
        assert services[f"asterisk{n}"]["depends_on"] == {
            f"node{n}-prepare": {"condition": "service_completed_successfully"}
        }
        # The prepare step and the engine are the same `vocalcast` commands `make up` runs.
        assert services[f"node{n}-prepare"]["command"] == [
            "stack",
            "prepare",
            "--module-dir",
            IMAGE_MODULE_DIR,
        ]
        assert "command" not in engine  # the image's CMD: `vocalcast serve`
    # Two nodes never share a port.
    ports = [
        services[f"engine{n}"]["environment"][name]
        for n in (1, 2)
        for name in services["engine1"]["environment"]
        if name.endswith(("_PORT", "_START", "_END"))
    ]
    assert len(ports) == len(set(ports))
    assert "core waitfullybooted" in (DOCKER / "asterisk" / "healthcheck.sh").read_text()


# --- Kamailio carries the trunks, as in the local cluster (issue 19) ----------------------------------------
def _kamailio_defines(service: dict[str, Any]) -> dict[str, str]:
    args = [str(a) for a in service["command"]]
    pairs = [args[i + 1].split("=", 1) for i, a in enumerate(args[:-1]) if a == "-A" and "=" in args[i + 1]]
    return {k: v.strip('"') for k, v in pairs}


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """target -> source (a volume's name, or a bind's path as given)."""
    return {t: s for s, t in (_volume_source_target(v) for v in service.get("volumes", []))}


def _edge_problems(services: dict[str, dict[str, Any]], topology: dict[str, Any]) -> list[str]:
    """What keeps the compose file from the local cluster's mechanism: every node's Asterisk pointed at
    Kamailio (VOCALCAST_SIP_EDGE), Kamailio reading the dispatcher list `vocalcast trunk apply|add|remove`
    renders (in the cluster home they and Kamailio share) and reloadable through its control socket there,
    and the topology the trunk commands read naming the compose file's nodes and their volumes."""
    problems: list[str] = []
    kamailio = services["kamailio"]
    defines = _kamailio_defines(kamailio)
    internal = defines.get("INTERNAL_LISTEN", "").removeprefix("udp:")
    prep = services.get("edge-prepare")
    if prep is None or prep.get("command") != ["trunk", "apply"]:
        return [*problems, "no edge-prepare service running `vocalcast trunk apply`"]
    home = Path(prep["environment"]["VOCALCAST_STATE_DIR"])
    edge = Edge(home, int(topology["edge"]["internal_port"]), int(topology["edge"]["external_port"]))
    if edge.internal != internal:
        problems.append(f"cluster.json's edge {edge.internal} is not Kamailio's internal socket {internal}")
    if defines.get("DSLIST") != str(edge.dispatcher_list):
        problems.append(f"Kamailio reads {defines.get('DSLIST')}, not the rendered {edge.dispatcher_list}")
    if f"unixs:{defines.get('CTL_SOCKET', '').removeprefix('unixs:')}" != edge.ctl:
        problems.append(f"Kamailio's control socket is not {edge.ctl}: `trunk add` cannot reload it")
    if defines.get("UACREG_DB") != f"text://{edge.registrations_db}":
        problems.append(f"Kamailio's registrations are not the rendered {edge.registrations_db}")
    if not defines.get("FENCE_DB", "").startswith("fence=>postgres://vocalcast_edge@"):
        problems.append("Kamailio's fence check does not read PostgreSQL as vocalcast_edge (no password)")
    if "PGPASSWORD" not in kamailio.get("environment", {}):
        problems.append("Kamailio gets no PGPASSWORD (kamailio.env) for its fence check")
    if kamailio["healthcheck"]["test"][-3:-1] != ["-s", edge.ctl]:
        problems.append("Kamailio's healthcheck does not ask its control socket")
    for name, service in (
        ("kamailio", kamailio),
        ("edge-prepare", prep),
        ("admin", services.get("admin", {})),
    ):
        if _volume_targets(service).get(str(home)) != "edge":
            problems.append(f"{name} does not mount the edge volume at {home}")
    if any(t.startswith("/etc/vocalcast/kamailio") for t in _volume_targets(kamailio)):
        problems.append("Kamailio mounts a hand-written dispatcher list")
    if kamailio.get("depends_on", {}).get("edge-prepare") != {"condition": "service_completed_successfully"}:
        problems.append("Kamailio may start before its list is rendered")
    if _volume_targets(prep).get(str(home / "run" / "cluster.json"), "").split("/")[-1] != "cluster.json":
        problems.append("edge-prepare does not see the topology (run/cluster.json)")
    nodes = {n["name"]: n["overrides"] for n in topology["nodes"]}
    engines = sorted(n for n in services if n.startswith("engine"))
    if sorted(f"engine{name.removeprefix('node')}" for name in nodes) != engines:
        problems.append(f"cluster.json's nodes {sorted(nodes)} are not the compose file's {engines}")
    for label in sorted(n for n in services if n.startswith("engine") or n.endswith("-prepare")):
        env = services[label].get("environment", {})
        if label != "edge-prepare" and env.get("VOCALCAST_SIP_EDGE") != internal:
            problems.append(
                f"{label}: VOCALCAST_SIP_EDGE is {env.get('VOCALCAST_SIP_EDGE')!r}, not {internal}"
            )
    for name, o in nodes.items():
        env = services.get(f"engine{name.removeprefix('node')}", {}).get("environment", {})
        for key in (
            "VOCALCAST_NODE",
            "VOCALCAST_SIP_BIND",
            "VOCALCAST_SIP_PORT",
            "VOCALCAST_ARI_PORT",
            "VOCALCAST_SIP_EDGE",
        ):
            if env.get(key) != o.get(key):
                problems.append(
                    f"{name}: cluster.json's {key} {o.get(key)!r} is not the engine's {env.get(key)!r}"
                )
        targets = _volume_targets(prep)
        state = o["VOCALCAST_STATE_DIR"]
        if (targets.get(state), targets.get(f"{state}/asterisk")) != (f"{name}-state", f"{name}-asterisk"):
            problems.append(f"edge-prepare does not mount {name}'s volumes at {state}")
    return problems


def test_the_compose_nodes_go_through_kamailio_and_it_reads_the_rendered_list(env_dir: Path) -> None:
    proc = _compose_config(COMPOSE, env_dir)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    topology = json.loads(CLUSTER_JSON.read_text())
    assert _edge_problems(services, topology) == []
    # The operator's trunk commands run where edge-prepare runs, as a tool (not started by `up`).
    assert services["admin"]["profiles"] == ["tools"]
    assert {k: v for k, v in services["admin"].items() if k not in ("profiles", "command")} == {
        k: v for k, v in services["edge-prepare"].items() if k not in ("command", "depends_on")
    }


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('  VOCALCAST_SIP_EDGE: "127.0.0.1:5080"\n', "", "engine1: VOCALCAST_SIP_EDGE is None"),
        (
            "      - 'DSLIST=\"/var/lib/vocalcast-cluster/kamailio/dispatcher.list\"'",
            "      - 'DSLIST=\"/etc/vocalcast/kamailio/dispatcher.list\"'",
            "Kamailio reads /etc/vocalcast/kamailio/dispatcher.list, not the rendered",
        ),
        (
            "    volumes:\n      - edge:/var/lib/vocalcast-cluster\n    depends_on:\n      edge-prepare:",
            "    volumes:\n      - ./kamailio/dispatcher.list:/etc/vocalcast/kamailio/dispatcher.list:ro\n"
            "    depends_on:\n      edge-prepare:",
            "kamailio does not mount the edge volume",
        ),
    ],
)
def test_the_edge_check_fails_a_compose_file_off_the_clusters_mechanism(
    env_dir: Path, old: str, new: str, problem: str
) -> None:
    text = COMPOSE.read_text()
    assert old in text
    broken = DOCKER / f".compose-edge-{os.getpid()}.yml"
    broken.write_text(text.replace(old, new, 1))
    try:
        proc = _compose_config(broken, env_dir)
    finally:
        broken.unlink()
    assert proc.returncode == 0, proc.stderr
    problems = _edge_problems(yaml.safe_load(proc.stdout)["services"], json.loads(CLUSTER_JSON.read_text()))
    assert any(problem in p for p in problems), problems


def test_the_edge_check_fails_the_compose_file_before_issue_19s_edge(env_dir: Path, tmp_path: Path) -> None:
    """The compose file as it was (hand-written list, no edge setting) is caught."""
    old = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "show", "a667d28:docker/compose.yml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert old.returncode == 0, old.stderr
    broken = DOCKER / f".compose-old-{os.getpid()}.yml"
    broken.write_text(old.stdout)
    try:
        proc = _compose_config(broken, env_dir)
    finally:
        broken.unlink()
    problems = _edge_problems(yaml.safe_load(proc.stdout)["services"], json.loads(CLUSTER_JSON.read_text()))
    assert problems == ["no edge-prepare service running `vocalcast trunk apply`"]


def test_docker_compose_rejects_a_broken_compose_file(env_dir: Path, tmp_path: Path) -> None:
    broken = DOCKER / f".compose-broken-{os.getpid()}.yml"  # beside the original: same build contexts
    broken.write_text(COMPOSE.read_text().replace("  kamailio:\n", "  kamailio:\n    gpus: all\n", 1))
    try:
        proc = _compose_config(broken, env_dir)
    finally:
        broken.unlink()
    assert proc.returncode != 0
    assert "gpus" in proc.stderr


# --- media without a shared filesystem (issue 19) ---------------------------------------------------------
def _volume_source_target(volume: object) -> tuple[str, str]:
    parts = str(volume).split(":")
    return parts[0], parts[1]


def _node_media_problems(label: str, env: dict[str, str], state_dir: Path) -> list[str]:
    """What keeps one node (an engine and its Asterisk on one host) from http media transport: its
    Asterisk must reach its media listener and FastAGI on loopback, and the engine its Asterisk's ARI."""
    settings = Settings.from_env(env | {"VOCALCAST_STATE_DIR": str(state_dir)})
    if settings.media_transport != "http":
        return [f"{label}: VOCALCAST_MEDIA_TRANSPORT is {settings.media_transport!r}, not http"]
    problems = []
    if not ("VOCALCAST_MEDIA_URL" in env and "VOCALCAST_MEDIA_SERVERS" in env):
        problems.append(f"{label}: VOCALCAST_MEDIA_URL and VOCALCAST_MEDIA_SERVERS must be set")
    reachable = {"127.0.0.1", "0.0.0.0"}
    media = urlsplit(settings.media_base_url)
    if media.hostname != "127.0.0.1" or media.port != settings.media_http_port:
        problems.append(f"{label}: media URL {settings.media_base_url} is not its listener")
    if settings.media_http_bind not in reachable:
        problems.append(f"{label}: media listener on {settings.media_http_bind}, out of its Asterisk's reach")
    if settings.agi_host != "127.0.0.1" or settings.agi_bind not in reachable:
        problems.append(f"{label}: FastAGI on {settings.agi_bind}, dialplan asks {settings.agi_host}")
    if settings.media_server_urls != {settings.node_name: f"http://127.0.0.1:{settings.ari_port}"}:
        problems.append(f"{label}: VOCALCAST_MEDIA_SERVERS {settings.media_servers!r} misses its ARI")
    return problems


def _media_problems(services: dict[str, dict[str, Any]], tmp_path: Path) -> list[str]:
    """What keeps the compose file's nodes from running without a media volume shared with the Asterisk
    boxes: an Asterisk mounting the library (or any volume of another node), or an engine not in http
    transport, or its Asterisk unable to reach its media listener, its FastAGI server or its ARI."""
    problems = []
    nodes = sorted(name.removeprefix("engine") for name in services if name.startswith("engine"))
    # Every volume a node's services mount, by node; and the engines' library volume.
    owners: dict[str, set[str]] = {}
    library: set[str] = set()
    for name, service in services.items():
        if name in CLUSTER_TOOLS:
            continue  # the trunk commands' services: no Asterisk runs there (the edge check holds them)
        node = next((n for n in nodes if name in (f"engine{n}", f"asterisk{n}", f"node{n}-prepare")), "")
        env = service.get("environment") or {}
        media_dir = env.get("VOCALCAST_MEDIA_DIR") or f"{env.get('VOCALCAST_STATE_DIR')}/media"
        for volume in service.get("volumes") or []:
            source, target = _volume_source_target(volume)
            owners.setdefault(source, set()).add(node)
            if name.startswith("engine") and target == media_dir:
                library.add(source)
    if not library:
        problems.append("no engine mounts a library volume at its media dir")
    for n in nodes:
        asterisk, engine, prepare = (
            services[f"asterisk{n}"],
            services[f"engine{n}"],
            services[f"node{n}-prepare"],
        )
        for volume in asterisk.get("volumes") or []:
            source, target = _volume_source_target(volume)
            if source in library:
                problems.append(f"asterisk{n} mounts the library ({source} at {target})")
            elif owners.get(source, set()) - {n}:
                problems.append(f"asterisk{n} shares {source} with another node")
        env = {k: str(v) for k, v in engine["environment"].items() if v != ""}
        # The prepare step renders the dialplan (AGI host, media server name): the same settings.
        if {k: str(v) for k, v in prepare["environment"].items() if v != ""} != env:
            problems.append(f"node{n}-prepare and engine{n} have different settings")
        # Host networking on both: the Asterisk reaches what its engine binds on loopback.
        if not asterisk.get("network_mode") == engine.get("network_mode") == "host":
            problems.append(f"node {n}: engine and Asterisk not both on the host network")
        problems += _node_media_problems(f"engine{n}", env, tmp_path / f"node{n}")
    return problems


def test_no_asterisk_mounts_the_library_and_every_node_plays_over_http(env_dir: Path, tmp_path: Path) -> None:
    proc = _compose_config(COMPOSE, env_dir)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert _media_problems(services, tmp_path) == []
    # The library is one volume of the engines (they all write to it), mounted by no Asterisk.
    libraries = {
        _volume_source_target(v)[0]
        for n in (1, 2)
        for v in services[f"engine{n}"]["volumes"]
        if _volume_source_target(v)[1] == "/var/lib/vocalcast/media"
    }
    assert libraries == {"media"}


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        # The media volume mounted into an Asterisk again (the compose file before http transport).
        (
            (
                "      - node2-asterisk:/srv/vocalcast",
                "      - media:/srv/vocalcast/media:ro\n      - node2-asterisk:/srv/vocalcast",
            ),
            "asterisk2 mounts the library (media at /srv/vocalcast/media)",
        ),
        (("VOCALCAST_MEDIA_TRANSPORT: http", "VOCALCAST_MEDIA_TRANSPORT: files"), "not http"),
        (('VOCALCAST_MEDIA_URL: "http://127.0.0.1:18291"', ""), "must be set"),
        (
            (
                'VOCALCAST_MEDIA_URL: "http://127.0.0.1:18291"',
                'VOCALCAST_MEDIA_URL: "http://127.0.0.1:18191"',
            ),
            "is not its listener",
        ),
        (
            ('VOCALCAST_MEDIA_HTTP_BIND: "127.0.0.1"', 'VOCALCAST_MEDIA_HTTP_BIND: "192.0.2.1"'),
            "out of its Asterisk's reach",
        ),
        (('VOCALCAST_AGI_HOST: "127.0.0.1"', 'VOCALCAST_AGI_HOST: "192.0.2.1"'), "dialplan asks 192.0.2.1"),
        (('"node2=http://127.0.0.1:18281"', '"node1=http://127.0.0.1:18181"'), "misses its ARI"),
    ],
)
def test_the_media_check_fails_a_compose_file_that_shares_media_or_lacks_http(
    tmp_path: Path, edit: tuple[str, str], problem: str
) -> None:
    """Each broken copy read as YAML (anchors and merge keys resolved, as docker-compose does; its own
    run, 1.5 s each, is the test above): the check names what is wrong."""
    text = COMPOSE.read_text()
    assert edit[0] in text
    assert _media_problems(yaml.safe_load(text)["services"], tmp_path) == []
    problems = _media_problems(yaml.safe_load(text.replace(edit[0], edit[1], 1))["services"], tmp_path)
    assert any(problem in p for p in problems), problems


def test_the_repository_holds_no_secret() -> None:
    compose = COMPOSE.read_text()
    assert not re.search(r"(PASSWORD|SECRET|KEY)\w*\s*[:=]\s*\S", compose)
    for example in (DOCKER / "env").glob("*.env.example"):
        for line in example.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                name, value = line.split("=", 1)
                if "URL" in name:
                    assert ":CHANGE-ME@" in value
                else:
                    assert value == "", f"{example.name}: {name} has a value"
    assert (DOCKER / "env" / ".gitignore").read_text().splitlines()[-1] == "*.env"


# --- images --------------------------------------------------------------------------------------------
def test_hadolint_passes_every_dockerfile() -> None:
    dockerfiles = sorted(DOCKER.glob("*/Dockerfile"))
    assert len(dockerfiles) == 3
    proc = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:12\nRUN cd /tmp && apt-get install curl\n")
    proc = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "DL3003" in proc.stdout  # cd in RUN


def test_the_asterisk_image_runs_the_stacks_asterisk_command(tmp_path: Path) -> None:
    """The image's entrypoint execs the command line `stack up` runs under chroot, on the config
    `stack prepare` renders; its packages and asterisk uid are the cached root's."""
    settings = Settings.from_env(
        stack_environ()
        | {
            "VOCALCAST_STATE_DIR": str(tmp_path / "state"),
            "VOCALCAST_ARI_PASSWORD": "a",
            "VOCALCAST_HEP_PASSWORD": "h",
            "VOCALCAST_AGI_SECRET": "g",
            "VOCALCAST_CDR_DB_PASSWORD": "c",
        }
    )
    asterisk.render(settings, IMAGE_MODULE_DIR, [])
    conf = settings.state_dir / "asterisk" / "etc" / "asterisk.conf"
    assert f"astmoddir => {IMAGE_MODULE_DIR}" in conf.read_text()

    script = (DOCKER / "asterisk" / "entrypoint.sh").read_text()
    # The sed line that finds the instance directory, run on the rendered config.
    sed = re.search(r"^inst=\$\(sed -n '([^']*)'", script, re.MULTILINE)
    assert sed is not None
    found = subprocess.run(["sed", "-n", sed[1], str(conf)], capture_output=True, text=True, check=True)
    inst = found.stdout.strip()
    assert inst == f"/srv/{settings.instance_id}"
    # The exec line, with that directory, is the stack's own command.
    exec_line = re.search(r"^exec (.*)$", script, re.MULTILINE)
    assert exec_line is not None
    assert shlex.split(exec_line[1].replace("$inst", inst)) == asterisk.command(settings)

    dockerfile = (DOCKER / "asterisk" / "Dockerfile").read_text()
    assert "FROM debian:sid" in dockerfile
    install = re.search(r"--no-install-recommends \\\n\s*(.*?) \\\n", dockerfile)
    assert install is not None
    assert install[1].split() == list(PACKAGES)
    assert f"ARG ASTERISK_UID={Settings.from_env({}).asterisk_uid}" in dockerfile


# --- Kamailio ------------------------------------------------------------------------------------------
def _kamailio_args(
    tmp_path: Path, internal: int, external: int, dslist: Path = DISPATCHER_LIST, uacreg: Path | None = None
) -> list[str]:
    registrations = ["-A", f'UACREG_DB="text://{uacreg}"', "-A", f'REG_CONTACT="127.0.0.1:{external}"']
    return [
        *(registrations if uacreg else []),
        "-f",
        str(KAMAILIO_CFG),
        "-A",
        f'DSLIST="{dslist}"',
        "-A",
        f'CTL_SOCKET="unixs:{tmp_path}/ctl"',
        "-A",
        f"INTERNAL_LISTEN=udp:127.0.0.1:{internal}",
        "-A",
        f"INTERNAL_PORT={internal}",
        "-A",
        f"EXTERNAL_LISTEN=udp:127.0.0.1:{external}",
    ]


def test_kamailio_parses_the_edge_config(tmp_path: Path) -> None:
    ok = subprocess.run(
        ["kamailio", "-c", *_kamailio_args(tmp_path, PORT_BASE + 1400, PORT_BASE + 1401)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "config file ok" in ok.stdout + ok.stderr
    broken = tmp_path / "broken.cfg"
    broken.write_text(KAMAILIO_CFG.read_text().replace("dlg_manage();", "dlg_manage_typo();"))
    args = _kamailio_args(tmp_path, PORT_BASE + 1400, PORT_BASE + 1401)
    args[1] = str(broken)
    bad = subprocess.run(["kamailio", "-c", *args], capture_output=True, text=True, check=False, timeout=30)
    assert bad.returncode != 0


def _rendered_list(tmp_path: Path) -> Path:
    """The list `vocalcast trunk apply` renders for the compose file's topology, with a trunk that has
    credentials (hex attributes) beside one without."""
    topology = json.loads(CLUSTER_JSON.read_text())
    media = [
        MediaServer(n["name"], "127.0.0.1", int(n["overrides"]["VOCALCAST_SIP_PORT"]))
        for n in topology["nodes"]
    ]
    trunks = [
        Trunk(
            name="opd",
            host="127.0.0.1",
            port=5070,
            auth="digest",
            username="u1",
            password="pw=1",
            max_cps=2.5,
        ),
        Trunk(name="opa", host="127.0.0.1", port=5071),
    ]
    path = tmp_path / "rendered.list"
    path.write_text(render_dispatcher(trunks, media))
    db = tmp_path / "db"  # the registrations' table, rendered beside it (a trunk that registers)
    db.mkdir()
    (db / "version").write_text(UACREG_VERSION)
    register = Trunk(name="opr", host="127.0.0.1", port=5072, auth="register", username="u2", password="p=2")
    (db / "uacreg").write_text(render_registrations([*trunks, register]))
    return path


@pytest.mark.parametrize("which", ["rendered", "image fallback"])
def test_kamailio_runs_the_edge_config_and_loads_the_dispatcher_list(tmp_path: Path, which: str) -> None:
    """Kamailio really starts on the file (both sockets, every module) and keeps every dispatcher line:
    of the list the trunk commands render (the compose file's), and of the image's fallback."""
    dslist = _rendered_list(tmp_path) if which == "rendered" else DISPATCHER_LIST
    log = tmp_path / "kamailio.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                "kamailio",
                "-DD",
                "-E",
                "-m",
                "32",
                "-M",
                "4",
                *_kamailio_args(
                    tmp_path,
                    PORT_BASE + 1400,
                    PORT_BASE + 1401,
                    dslist,
                    uacreg=tmp_path / "db" if which == "rendered" else None,
                ),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        listed = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            rpc = subprocess.run(
                ["kamcmd", "-s", f"unixs:{tmp_path}/ctl", "dispatcher.list"],
                capture_output=True,
                text=True,
                check=False,
                timeout=5,
            )
            if rpc.returncode == 0:
                listed = rpc.stdout
                break
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()[-2000:]
        uris = sorted(re.findall(r"URI: (\S+)", listed))
        expected = sorted(
            line.split()[1]
            for line in dslist.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        assert uris == expected
        if which == "rendered":
            regs = subprocess.run(
                ["kamcmd", "-s", f"unixs:{tmp_path}/ctl", "uac.reg_dump"],
                capture_output=True,
                text=True,
                check=False,
                timeout=5,
            ).stdout
            assert re.findall(r"l_uuid: (\S+)", regs) == ["opr"], regs
            assert "auth_password: p=2" in regs and "auth_proxy: sip:127.0.0.1:5072" in regs, regs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    errors = [line for line in log.read_text().splitlines() if " ERROR: " in line or " WARNING: " in line]
    # No PostgreSQL here: the fence check's connection fails, and Kamailio starts all the same (sqlops'
    # connect_mode 1; tests/integration/test_cluster_edge*.py run the check on a real one).
    unreachable = ("db_postgres", "[db.c:", "sqlops")
    assert [line for line in errors if not any(where in line for where in unreachable)] == []
    assert any("db_postgres_new_connection" in line for line in errors)


# --- systemd -------------------------------------------------------------------------------------------
def _verify(units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _installed_units(tmp_path: Path, edit: dict[str, str] | None = None) -> Path:
    """The units as installed from this checkout: /opt/vocalcast (the documented prefix) is this repo."""
    target = tmp_path / "units"
    target.mkdir()
    for unit in sorted(UNITS.glob("vocalcast*.service")) + sorted(UNITS.glob("*.target")):
        text = unit.read_text().replace("/opt/vocalcast", str(PROJECT_ROOT))
        for old, new in (edit or {}).items():
            text = text.replace(old, new)
        (target / unit.name).write_text(text)
    return target


def test_systemd_analyze_verifies_the_units_without_a_word(tmp_path: Path) -> None:
    units = _installed_units(tmp_path)
    assert {p.name for p in units.iterdir()} == {
        "vocalcast-asterisk.service",
        "vocalcast-engine.service",
        "vocalcast-kamailio.service",
        "vocalcast.target",
    }
    proc = _verify(units)
    assert (proc.returncode, proc.stderr) == (0, "")
    # The units run the same `vocalcast` commands as the compose file and `make up`.
    text = "\n".join(p.read_text() for p in units.iterdir())
    vocalcast = VENV_BIN / "vocalcast"
    assert f"ExecStartPre={vocalcast} stack prepare\n" in text
    assert f"ExecStart={vocalcast} stack run-asterisk\n" in text
    assert f"ExecStart={vocalcast} serve\n" in text
    assert f"-f {PROJECT_ROOT}/docker/kamailio/kamailio.cfg" in text


def test_the_bare_metal_edge_reads_the_rendered_list_and_the_node_goes_through_it() -> None:
    """As in the compose file (issue 19): the Kamailio unit reads the list `vocalcast trunk apply` renders in
    the edge host's cluster home, with its control socket there; the node's env points its trunks at the
    unit's internal socket."""
    unit = (UNITS / "vocalcast-kamailio.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    args = shlex.split(exec_start.removeprefix("ExecStart="))
    defines = dict(args[i + 1].split("=", 1) for i, a in enumerate(args[:-1]) if a == "-A")
    edge = Edge(Path("/var/lib/vocalcast-cluster"), 5080, 5060)
    assert defines["DSLIST"] == str(edge.dispatcher_list)
    assert defines["CTL_SOCKET"] == edge.ctl
    assert defines["UACREG_DB"] == f"text://{edge.registrations_db}"
    assert defines["FENCE_DB"] == "fence=>postgres://vocalcast_edge@${DB_ADDRESS}:5432/vocalcast"
    node = _env_file((UNITS / "vocalcast.env.example").read_text())
    kamailio_env = _env_file((UNITS / "kamailio.env.example").read_text())
    internal = (
        defines["INTERNAL_LISTEN"]
        .removeprefix("udp:")
        .replace("${EDGE_INTERNAL_ADDRESS}", kamailio_env["EDGE_INTERNAL_ADDRESS"])
    )
    assert node["VOCALCAST_SIP_EDGE"] == internal


def _env_file(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {name: value for name, value in pairs if value}


def test_the_bare_metal_node_plays_over_http_with_its_own_asterisk(tmp_path: Path) -> None:
    """vocalcast.env.example (both units' EnvironmentFile: `stack prepare` renders the dialplan's AGI host
    from it, the engine serves media by it) sets http transport; dropping it is caught."""
    example = (UNITS / "vocalcast.env.example").read_text()
    for unit in ("vocalcast-asterisk.service", "vocalcast-engine.service"):
        assert "EnvironmentFile=/etc/vocalcast/vocalcast.env\n" in (UNITS / unit).read_text()
    assert _node_media_problems("systemd", _env_file(example), tmp_path / "node") == []
    without = example.replace("VOCALCAST_MEDIA_TRANSPORT=http\n", "")
    assert _node_media_problems("systemd", _env_file(without), tmp_path / "node") == [
        "systemd: VOCALCAST_MEDIA_TRANSPORT is 'files', not http"
    ]
    elsewhere = example.replace("VOCALCAST_MEDIA_SERVERS=node1=", "VOCALCAST_MEDIA_SERVERS=node2=")
    assert any("misses its ARI" in p for p in _node_media_problems("x", _env_file(elsewhere), tmp_path / "n"))


def test_systemd_analyze_reports_a_misspelt_key(tmp_path: Path) -> None:
    proc = _verify(_installed_units(tmp_path, {"\nRestart=": "\nRestat="}))
    assert "Unknown key 'Restat'" in proc.stderr


# --- the engine's service user (issue 17) ----------------------------------------------------------------
def test_every_deployment_runs_the_engine_as_the_service_user(env_dir: Path) -> None:
    """`make up` (setpriv), the systemd unit and the engine image agree: user `vocalcast`, Asterisk's gid as
    its one supplementary group, no way back to root; root only where paths are handed over."""
    asterisk_gid = Settings.from_env({}).asterisk_uid
    unit = (UNITS / "vocalcast-engine.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["User"] == settings["Group"] == service_user.SERVICE_USER
    assert settings["SupplementaryGroups"] == str(asterisk_gid)
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["CapabilityBoundingSet"] == settings["AmbientCapabilities"] == ""
    assert settings["UMask"] == "0027"
    assert "/var/lib/vocalcast" in settings["ReadWritePaths"].split()
    # The root part: the Asterisk unit's `stack prepare` creates the user and hands it its paths.
    assert "User=" not in (UNITS / "vocalcast-asterisk.service").read_text()

    dockerfile = (DOCKER / "engine" / "Dockerfile").read_text()
    assert f"ARG ASTERISK_UID={asterisk_gid}" in dockerfile
    assert "--groups asterisk" in dockerfile and " vocalcast\n" in dockerfile
    assert dockerfile.rstrip().splitlines()[-3] == "USER ${VOCALCAST_UID}"
    proc = _compose_config(COMPOSE, env_dir)
    services = yaml.safe_load(proc.stdout)["services"]
    for n in (1, 2):
        assert services[f"node{n}-prepare"]["user"] == "root"
        assert "user" not in services[f"engine{n}"]  # the image's USER
        assert services[f"engine{n}"]["build"]["args"]["ASTERISK_UID"] == str(asterisk_gid)
    assert "umask 007" in (DOCKER / "asterisk" / "entrypoint.sh").read_text()
