"""A customer's browser without a browser: aiohttp with a cookie jar, the CSRF token picked from the last
page, and a query counter on the engine's pool (every statement a page runs, with its arguments)."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from engine.app import Engine

_TAG = re.compile(r"<[^>]+>")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    text: str
    url: str
    headers: Any

    @property
    def visible(self) -> str:
        """The page's text as read: tags dropped, entities decoded, white space collapsed."""
        return " ".join(html.unescape(_TAG.sub(" ", self.text)).replace("\u202f", " ").split())

    def contains(self, fragment: str) -> bool:
        return fragment in self.visible


class UiClient:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.base = f"http://127.0.0.1:{engine.http_port}"
        # unsafe=True: keep cookies set by an IP address (127.0.0.1), as a browser does.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    def _remember(self, text: str) -> None:
        found = _CSRF.search(text)
        if found:
            self.csrf = html.unescape(found.group(1))

    async def get(self, path: str, **kwargs: Any) -> Answer:
        async with self.http.get(self.base + path, **kwargs) as resp:
            text = await resp.text()
            self._remember(text)
            return Answer(resp.status, text, str(resp.url), resp.headers)

    async def post(self, path: str, data: Any = None, *, csrf: bool = True, **kwargs: Any) -> Answer:
        if isinstance(data, dict | list | None):
            items = list((data or {}).items()) if isinstance(data, dict | None) else list(data)
            if csrf:
                items.insert(0, ("csrf", self.csrf))
            data = items
        async with self.http.post(self.base + path, data=data, **kwargs) as resp:
            text = await resp.text()
            self._remember(text)
            return Answer(resp.status, text, str(resp.url), resp.headers)

    def set_cookie(self, name: str, value: str) -> None:
        """Replace a cookie as if this site had set it (a stolen or tampered cookie)."""
        self.http.cookie_jar.update_cookies({name: value}, response_url=URL(self.base))

    async def login(self, email: str, password: str) -> Answer:
        await self.get("/connexion")
        return await self.post("/connexion", {"email": email, "password": password})


@dataclass(eq=False)  # hashable: asyncpg keeps its query loggers in a set
class QueryLog:
    """Statements run on the engine's pool while active (the page's own, not the test's)."""

    queries: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    active: bool = False

    def __call__(self, record: Any) -> None:
        if self.active:
            self.queries.append((record.query, tuple(record.args or ())))

    @contextlib.contextmanager
    def recording(self) -> Iterator[QueryLog]:
        self.queries.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False


@contextlib.asynccontextmanager
async def logged_queries(engine: Engine) -> AsyncIterator[QueryLog]:
    """Attach a query logger to every connection the engine's pool hands out (asyncpg's own hook)."""
    log = QueryLog()
    original = engine.db.connection

    @contextlib.asynccontextmanager
    async def connection():  # type: ignore[no-untyped-def]
        async with original() as conn:
            conn.add_query_logger(log)
            try:
                yield conn
            finally:
                conn.remove_query_logger(log)

    engine.db.connection = connection  # type: ignore[method-assign]
    try:
        yield log
    finally:
        engine.db.connection = original  # type: ignore[method-assign]
