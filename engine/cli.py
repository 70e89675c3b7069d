"""Command-line entry point: ``vocalcast <group> ...``; each group lives in ``engine.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import structlog

from engine import __version__
from engine.errors import VocalcastError
from engine.logs import configure
from engine.settings import Settings, SettingsError

# Each module exposes ``register(subparsers)``; its parsers set ``func(args) -> int``.
COMMAND_MODULES = [
    "engine.commands.stack",
    "engine.commands.serve",
    "engine.commands.migrate",
    "engine.commands.trunk",
    "engine.commands.call",
    "engine.commands.numbers",
    "engine.commands.contacts",
    "engine.commands.account",
    "engine.commands.message",
    "engine.commands.sends",
    "engine.commands.token",
    "engine.commands.webhook",
    "engine.commands.stoplist",
    "engine.commands.privacy",
    "engine.commands.node",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vocalcast", description="Voice-message broadcast engine.")
    parser.add_argument("--version", action="version", version=f"vocalcast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr, so that a command's own output (--json) stays clean on stdout. (Called from a
    # program that configured logging already — tests — it leaves that configuration alone.)
    if not structlog.is_configured():
        _configure_logs()
    try:
        return int(args.func(args))
    except (SettingsError, VocalcastError) as exc:
        print(f"vocalcast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _configure_logs() -> None:
    try:
        settings = Settings.from_env()
        configure(settings.log_level, "console" if settings.log_format == "auto" else settings.log_format)
    except SettingsError:
        configure("info", "console")


if __name__ == "__main__":
    sys.exit(main())
