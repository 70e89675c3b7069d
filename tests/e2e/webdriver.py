"""A small W3C WebDriver client over aiohttp: Debian's chromedriver driving Debian's headless Chromium.

No Selenium, no browser download: chromedriver is started on a free loopback port with a fresh profile,
and spoken to in plain JSON. Only the commands the tests need.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
FLAGS = [
    "--headless",
    "--no-sandbox",  # as root, Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",  # no request leaves the machine
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--lang=fr-FR",
]


class WebDriverError(AssertionError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Element:
    def __init__(self, browser: Browser, ref: str) -> None:
        self.browser = browser
        self.ref = ref

    def _path(self, suffix: str = "") -> str:
        return f"/element/{self.ref}{suffix}"

    async def click(self) -> None:
        await self.browser.command("POST", self._path("/click"), {})

    async def type(self, text: str) -> None:
        await self.browser.command("POST", self._path("/value"), {"text": text})

    async def clear(self) -> None:
        await self.browser.command("POST", self._path("/clear"), {})

    async def text(self) -> str:
        return str(await self.browser.command("GET", self._path("/text")))

    async def prop(self, name: str) -> Any:
        return await self.browser.command("GET", self._path(f"/property/{name}"))


class Browser:
    """One WebDriver session; ``async with Browser.start(...) as browser``."""

    def __init__(self, http: aiohttp.ClientSession, base: str, session_id: str, site: str) -> None:
        self.http = http
        self.base = base
        self.session_id = session_id
        self.site = site

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, site: str, downloads: Path) -> AsyncIterator[Browser]:
        port = _free_port()
        log = tempfile.NamedTemporaryFile(prefix="chromedriver-", suffix=".log", delete=False)  # noqa: SIM115
        driver = await asyncio.create_subprocess_exec(
            str(CHROMEDRIVER), f"--port={port}", "--allowed-ips=127.0.0.1", stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
                await cls._wait_ready(http, base)
                capabilities = {
                    "capabilities": {
                        "alwaysMatch": {
                            "browserName": "chrome",
                            "goog:chromeOptions": {
                                "binary": str(CHROMIUM),
                                "args": [*FLAGS, f"--user-data-dir={profile.name}"],
                                "prefs": {
                                    "download.default_directory": str(downloads),
                                    "download.prompt_for_download": False,
                                },
                            },
                        }
                    }
                }
                async with http.post(f"{base}/session", json=capabilities) as resp:
                    body = await resp.json()
                    if resp.status != 200:
                        raise WebDriverError(f"no browser session: {body}")
                session_id = body["value"]["sessionId"]
                browser = cls(http, f"{base}/session/{session_id}", session_id, site)
                try:
                    await browser.command("POST", "/timeouts", {"script": 30000, "pageLoad": 30000})
                    yield browser
                finally:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        await http.delete(browser.base)
        finally:
            driver.terminate()
            try:
                await asyncio.wait_for(driver.wait(), 10)
            except TimeoutError:
                driver.kill()
                await driver.wait()
            log.close()
            profile.cleanup()

    @staticmethod
    async def _wait_ready(http: aiohttp.ClientSession, base: str) -> None:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                async with http.get(f"{base}/status") as resp:
                    if resp.status == 200 and (await resp.json())["value"].get("ready"):
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise WebDriverError("chromedriver did not start")
            await asyncio.sleep(0.1)

    async def command(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        async with self.http.request(method, self.base + path, json=payload) as resp:
            body = await resp.json()
        if resp.status != 200:
            raise WebDriverError(f"{method} {path}: {body.get('value')}")
        return body["value"]

    # --- navigation and reading ---------------------------------------------------------------------
    async def go(self, path: str) -> None:
        await self.command("POST", "/url", {"url": self.site + path})

    async def url(self) -> str:
        return str(await self.command("GET", "/url"))

    async def path(self) -> str:
        url = await self.url()
        return url[len(self.site) :] if url.startswith(self.site) else url

    async def find(self, css: str) -> Element:
        value = await self.command("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, value[ELEMENT])

    async def find_all(self, css: str) -> list[Element]:
        values = await self.command("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, v[ELEMENT]) for v in values]

    async def text(self, css: str = "main") -> str:
        return " ".join((await (await self.find(css)).text()).split())

    async def script(self, source: str, *args: Any) -> Any:
        return await self.command("POST", "/execute/sync", {"script": source, "args": list(args)})

    async def async_script(self, source: str, *args: Any) -> Any:
        return await self.command("POST", "/execute/async", {"script": source, "args": list(args)})

    async def screenshot(self, target: Path) -> None:
        data = await self.command("GET", "/screenshot")
        await asyncio.to_thread(target.write_bytes, base64.b64decode(data))

    # --- forms --------------------------------------------------------------------------------------
    async def fill(self, fields: dict[str, str]) -> None:
        """Type into fields by CSS selector (replacing what is there); selects take the option's value."""
        for css, value in fields.items():
            element = await self.find(css)
            tag = str(await element.prop("tagName")).lower()
            if tag == "select":
                await self.script(
                    "arguments[0].value = arguments[1];"
                    "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
                    {ELEMENT: element.ref},
                    value,
                )
            else:
                await element.clear()
                await element.type(value)

    async def click(self, css: str) -> None:
        await (await self.find(css)).click()

    async def wait_for(self, predicate_js: str, timeout_s: float = 20.0, what: str = "condition") -> Any:
        """Poll a JavaScript expression until it is truthy (never a bare sleep)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await self.script(f"return ({predicate_js});")
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise WebDriverError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.1)

    async def wait_path(self, expected: str, timeout_s: float = 20.0) -> str:
        """Wait to be on ``expected`` (any page under it when it ends with /), fully loaded."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            path = await self.path()
            bare = path.split("?", 1)[0].split("#", 1)[0]
            there = bare.startswith(expected) if expected.endswith("/") else bare == expected
            if there and await self.script("return document.readyState") == "complete":
                return path
            if asyncio.get_running_loop().time() > deadline:
                raise WebDriverError(f"still on {path}, expected {expected}")
            await asyncio.sleep(0.1)
