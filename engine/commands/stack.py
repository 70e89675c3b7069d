"""`vocalcast stack up|down|status`: the local stack of this instance."""

from __future__ import annotations

import argparse
import json

from engine import stack
from engine.settings import Settings
from engine.stack import cluster
from engine.stack.root import ensure_root
from engine.telephony import edge


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("stack", help="the local stack: Asterisk root, PostgreSQL, demo phone, engine")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="build what is missing and start everything (harmless twice)")
    up.add_argument("--no-engine", action="store_true", help="start everything but the engine process")
    up.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="a local cluster (issue 19): Kamailio in front of this many Asterisk + engine nodes",
    )
    up.set_defaults(func=_up)
    actions.add_parser("down", help="stop what `stack up` started").set_defaults(func=_down)
    status = actions.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable report")
    status.add_argument("--manifest", action="store_true", help="every package of the Asterisk root")
    status.set_defaults(func=_status)
    prepare = actions.add_parser(
        "prepare",
        help="migrate, grant the CDR role, render this node's Asterisk config; start nothing "
        "(container entrypoints, systemd units)",
    )
    prepare.add_argument(
        "--module-dir",
        help="Asterisk's module directory as it sees it, when its root is not on this host "
        f"(the Asterisk image: {stack.IMAGE_MODULE_DIR}); default: the cached root's",
    )
    prepare.set_defaults(func=_prepare)
    run_asterisk = actions.add_parser(
        "run-asterisk", help="run this node's Asterisk in the foreground in its root (after `stack prepare`)"
    )
    run_asterisk.set_defaults(func=_run_asterisk)
    rebuild = actions.add_parser("rebuild-root", help="rebuild the cached Asterisk root (stack must be down)")
    rebuild.set_defaults(func=_rebuild)


def _up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.nodes:
        return _cluster_up(settings, args)
    if edge.read_topology(settings) is not None:
        print("a cluster runs here: `vocalcast stack up --nodes N` (or `stack down` first)")
        return 1
    result = stack.up(settings, engine=not args.no_engine)
    s = result.settings
    print(
        f"vocalcast is up ({'DEMO mode' if s.demo else 'live mode'}); started: "
        f"{', '.join(result.started) or 'nothing, it was already running'}"
    )
    print(f"  web:       http://{s.http_host}:{s.http_port}/")
    print(f"  health:    {s.health_url}")
    print(
        f"  asterisk:  {result.root.asterisk_version} "
        f"(SIP {s.sip_bind}:{s.sip_port}, ARI 127.0.0.1:{s.ari_port})"
    )
    print(f"  state:     {s.state_dir}")
    for line in stack.after_up_messages(s):
        print(line)
    return 0


def _cluster_up(settings: Settings, args: argparse.Namespace) -> int:
    built, started = cluster.up(settings, args.nodes, engine=not args.no_engine)
    print(f"vocalcast cluster is up ({len(built.nodes)} nodes); started: {', '.join(started) or 'nothing'}")
    print(f"  edge:      Kamailio {built.edge.external} (carriers), {built.edge.internal} (media servers)")
    for node in built.nodes:
        o = node.overrides
        print(
            f"  {node.name}:     http://127.0.0.1:{o['VOCALCAST_HTTP_PORT']}/  "
            f"(SIP 127.0.0.1:{o['VOCALCAST_SIP_PORT']}, ARI 127.0.0.1:{o['VOCALCAST_ARI_PORT']})"
        )
    return 0


def _down(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    stopped = cluster.down(settings)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    report = cluster.status(settings)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(stack.format_status(report, full_manifest=args.manifest))
    crashed = [name for name, piece in report["pieces"].items() if piece["state"] == "crashed"]
    return 1 if crashed else 0


def _prepare(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    trunks = stack.prepare(settings, module_dir=args.module_dir)
    print(
        f"prepared node {settings.node_name}: database migrated, Asterisk config in "
        f"{settings.state_dir / 'asterisk/etc'} ({len(trunks)} trunks)"
    )
    return 0


def _run_asterisk(args: argparse.Namespace) -> int:
    stack.run_asterisk(Settings.from_env())
    return 1  # not reached: the process became Asterisk


def _rebuild(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    info = ensure_root(settings, force=True)
    print(f"rebuilt {info.path}: asterisk {info.asterisk_version}, {info.packages} packages")
    return 0
