"""`vocalcast node list|drain|resume`: the engines (nodes) sharing this PostgreSQL (issue 19).

A node drained claims no new call and finishes those in progress (for maintenance); the other nodes carry
the rest of the sends. The drain outlives a restart of the node: `node resume` ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from engine.services.nodes import nodes_report, set_draining
from engine.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("node", help="engines sharing the database: list, drain, resume")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = actions.add_parser("list", help="every node: epoch, last heartbeat, drain, calls open")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    drain = actions.add_parser("drain", help="the node claims nothing new and finishes its calls")
    drain.add_argument("name", nargs="?", help="the node (default: this host's, VOCALCAST_NODE)")
    drain.set_defaults(func=_drain, draining=True)
    resume = actions.add_parser("resume", help="end a node's drain: it claims calls again")
    resume.add_argument("name", nargs="?", help="the node (default: this host's, VOCALCAST_NODE)")
    resume.set_defaults(func=_drain, draining=False)


def _list(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    rows = asyncio.run(nodes_report(settings))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no node has run on this database yet")
    for row in rows:
        print(
            f"{row['name']:<20} {row['state']:<12} epoch {row['epoch']:<4} "
            f"seen {row['silent_s']:.1f} s ago  open attempts {row['open_attempts']}"
        )
    return 0


def _drain(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    name = args.name or settings.node_name

    if not asyncio.run(set_draining(settings, name, args.draining)):
        print(f"no node named {name} has run on this database")
        return 1
    print(
        f"node {name}: {'draining (claims nothing new, finishes its calls)' if args.draining else 'resumed'}"
    )
    return 0
