"""`vocalcast serve`: run the engine process in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from engine.app import serve
from engine.logs import configure
from engine.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the engine (HTTP, ARI, dialer) in the foreground")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure(settings.log_level, settings.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
    return 0
