"""`vocalcast serve` as a separate process, for the benches that measure the engine from outside."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def engine_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's VOCALCAST_* settings (the bench instance's), with overrides."""
    env = {k: v for k, v in os.environ.items() if k.startswith("VOCALCAST_") or k in {"PATH", "LANG", "HOME"}}
    env.update(overrides)
    return env


class EngineProcess:
    """Started with start() (returns once /healthz answers 200), stopped with stop() (SIGTERM, then kill)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['VOCALCAST_HTTP_PORT']}"

    async def start(self, timeout_s: float = 20.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine.cli", "serve",
                env=self.env, stdout=log, stderr=log, cwd=str(PROJECT_ROOT),
            )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    timeout = aiohttp.ClientTimeout(total=2)
                    async with http.get(self.url + "/healthz", timeout=timeout) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if self.proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise RuntimeError(f"the engine did not come up; see {self.log_path}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        else:
            await self.proc.wait()
