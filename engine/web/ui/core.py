"""What every page of the customer's space shares: templates, French formatting, the page decorators
(session, CSRF on every POST, errors turned into French pages) and one-shot notices."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDictProxy

from engine.domain.accounts import PARIS, Account
from engine.domain.numbers import format_for_trunk
from engine.domain.outcomes import Outcome
from engine.domain.sends import LABELS_FR, SendStatus
from engine.errors import DatabaseUnavailable, NotFound
from engine.services import Services
from engine.settings import Settings
from engine.web import sessions
from engine.web.context import services_of

log = structlog.get_logger(__name__)

WEB_DIR: Final = Path(__file__).resolve().parent.parent
TEMPLATES_DIR: Final = WEB_DIR / "templates"
STATIC_DIR: Final = WEB_DIR / "static"

ORIGIN_LABELS_FR: Final = {"web": "Site", "http": "HTTP", "email": "E-mail", "api": "API", "cli": "Console"}
MESSAGE_ORIGIN_FR: Final = {"phone": "Téléphone", "file": "Fichier"}
LEDGER_KIND_FR: Final = {
    "credit": "Crédit",
    "reserve": "Réservation",
    "consume": "Appel délivré",
    "release": "Restitution",
}

# Pages: no caching of personal data, no framing, scripts and styles from our own origin only.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# --- French formatting ----------------------------------------------------------------------------------


def phone_fr(e164: str | None) -> str:
    """+33612345678 → "06 12 34 56 78"; other countries stay in E.164."""
    if not e164:
        return ""
    try:
        national = format_for_trunk(e164, "national")
    except ValueError:
        return e164
    if national.startswith("0") and not national.startswith("00") and len(national) == 10:
        return " ".join(national[i : i + 2] for i in range(0, 10, 2))
    return e164


def national_fr(number: str) -> str:
    """A 10-digit national number as customers write it: 0172360170 → "01 72 36 01 70"."""
    if len(number) == 10 and number.isdigit():
        return " ".join(number[i : i + 2] for i in range(0, 10, 2))
    return number


def datetime_fr(value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone(PARIS)
    return f"{local:%d/%m/%Y} à {local:%H}h{local:%M}"


def date_fr(value: datetime | None) -> str:
    return "" if value is None else f"{value.astimezone(PARIS):%d/%m/%Y}"


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def count_fr(value: int | float) -> str:
    """10000 → "10 000" (narrow no-break space between thousands, as French typography has it)."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\u202f").replace(".", ",")
    return f"{int(value):,}".replace(",", "\u202f")


def duration_fr(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}".replace(".", ",") + " s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def outcome_fr(value: str | None) -> str:
    if not value:
        return ""
    try:
        return Outcome(value).label_fr
    except ValueError:
        return value


def status_fr(value: str) -> str:
    try:
        return LABELS_FR[SendStatus(value)]
    except ValueError:
        return value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "svg"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        phone=phone_fr,
        national=national_fr,
        dt=datetime_fr,
        date=date_fr,
        iso=iso,
        count=count_fr,
        duration=duration_fr,
        outcome=outcome_fr,
        status=status_fr,
        origin=lambda v: ORIGIN_LABELS_FR.get(v, v),
        message_origin=lambda v: MESSAGE_ORIGIN_FR.get(v, v),
        ledger_kind=lambda v: LEDGER_KIND_FR.get(v, v),
        urlquote=lambda v: quote(str(v), safe=""),
    )
    return env


ENV: Final = _environment()


# --- the request context --------------------------------------------------------------------------------

Form = MultiDictProxy[str | web.FileField] | Mapping[str, Any]


@dataclass
class Page:
    """One request to a page: who asks, what they sent, and how to answer."""

    request: web.Request
    visitor: sessions.Visitor
    form: Form = field(default_factory=dict)
    real_trunks: tuple[str, ...] = ()  # in demo mode, trunks that call real numbers all the same

    @property
    def services(self) -> Services:
        return services_of(self.request)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def account(self) -> Account:
        if self.visitor.account is None:
            raise RuntimeError("a page for logged-in customers served to nobody")
        return self.visitor.account

    def text(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value if isinstance(value, str) else default

    def texts(self, name: str) -> list[str]:
        getall = getattr(self.form, "getall", None)
        if getall is None:
            value = self.form.get(name)
            return [value] if isinstance(value, str) else []
        return [v for v in getall(name, []) if isinstance(v, str)]

    def render(self, template: str, *, status: int = 200, **values: Any) -> web.Response:
        notice = _read_notice(self.request)
        body = ENV.get_template(template).render(
            demo=self.settings.demo,
            real_trunks=self.real_trunks,
            account=self.visitor.account,
            csrf=self.visitor.csrf,
            path=self.request.path,
            notice=notice,
            **values,
        )
        response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
        response.headers.update(SECURITY_HEADERS)
        if notice:
            response.del_cookie(sessions.NOTICE_COOKIE, path="/")
        sessions.finish(response, self.visitor, self.settings)
        return response

    def redirect(self, location: str, notice: str | None = None) -> web.Response:
        """303 to ``location``; ``notice`` is shown once on the next page (a cookie, not the URL)."""
        response = web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
        if self.request.headers.get("X-Requested-With") == "XMLHttpRequest":
            # Scripts (the upload's progress bar) navigate themselves: following the redirect inside
            # the request would show the notice on a page nobody sees.
            response = web.json_response({"location": location}, headers={"Cache-Control": "no-store"})
        if notice:
            response.set_cookie(
                sessions.NOTICE_COOKIE,
                base64.urlsafe_b64encode(notice.encode()).decode(),
                **sessions.cookie_options(self.settings),  # type: ignore[arg-type]
            )
        sessions.finish(response, self.visitor, self.settings)
        return response


def _read_notice(request: web.Request) -> str:
    raw = request.cookies.get(sessions.NOTICE_COOKIE)
    if not raw:
        return ""
    try:
        return base64.urlsafe_b64decode(raw.encode()).decode()[:500]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


Handler = Callable[[Page], Awaitable[web.StreamResponse]]


def _error_page(page: Page, status: int, title: str, text: str) -> web.Response:
    return page.render("error.html", status=status, title=title, text=text)


async def _run(page: Page, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(page)
    except NotFound:
        # Another account's object answers exactly like a missing one.
        return _error_page(
            page, 404, "Page introuvable", "Cette page n'existe pas, ou elle n'est pas à vous."
        )
    except DatabaseUnavailable:
        log.warning("ui.database_unavailable", path=page.request.path)
        return _error_page(
            page,
            503,
            "Service momentanément indisponible",
            "Le service est momentanément indisponible. Réessayez dans quelques instants.",
        )


async def _checked_form(request: web.Request, found: sessions.Visitor, *, upload: bool) -> Form | None:
    """The POSTed form when its CSRF token is right; None otherwise, whatever the body's encoding
    (url-encoded, multipart, or anything else: no token, no action). Only upload pages stream their
    multipart body: they check the token themselves with ``csrf_ok``, before any file part."""
    if request.method != "POST":
        return dict(request.query)
    if upload and request.content_type == "multipart/form-data":
        return {}
    form = await request.post()
    token = form.get("csrf")
    if not sessions.csrf_ok(found, token if isinstance(token, str) else None):
        return None
    return form


def _forbidden(page: Page) -> web.Response:
    return _error_page(
        page,
        403,
        "Formulaire expiré",
        "Ce formulaire a expiré ou ne vient pas de nos pages. Revenez en arrière, rechargez la page et "
        "recommencez.",
    )


async def _visit(request: web.Request) -> Page | web.StreamResponse:
    """The request's visitor as a Page, or the 503 answer while the database is away."""
    services = services_of(request)
    try:
        found = await sessions.visitor(request, services)
        real = await services.trunks.real_in_demo() if services.settings.demo else ()
    except DatabaseUnavailable:
        return web.Response(text="Service momentanément indisponible.", status=503, content_type="text/plain")
    return Page(request, found, real_trunks=real)


def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page for logged-in customers: anonymous visitors are sent to « Connexion »."""
    return _logged_in(handler, upload=False)


def upload_page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page for logged-in customers whose POST is a streamed multipart upload (CSRF checked by the
    handler before the first file part)."""
    return _logged_in(handler, upload=True)


def _logged_in(handler: Handler, *, upload: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        ctx = await _visit(request)
        if isinstance(ctx, web.StreamResponse):
            return ctx
        found = ctx.visitor
        if found.account is None:
            if request.method == "GET" and not request.path.endswith(".json"):
                target = request.path_qs
                return ctx.redirect("/connexion?suite=" + quote(target, safe=""))
            return (
                web.json_response({"error": "not_logged_in"}, status=401)
                if request.path.endswith(".json")
                else ctx.redirect("/connexion")
            )
        form = await _checked_form(request, found, upload=upload)
        if form is None:
            return _forbidden(ctx)
        ctx.form = form
        return await _run(ctx, handler)

    return wrapped


def public_page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page anyone may see (connexion, mot de passe oublié); its POSTs are CSRF-checked too."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        ctx = await _visit(request)
        if isinstance(ctx, web.StreamResponse):
            return ctx
        found = ctx.visitor
        form = await _checked_form(request, found, upload=False)
        if form is None:
            return _forbidden(ctx)
        ctx.form = form
        return await _run(ctx, handler)

    return wrapped


# A path of this site, in the characters a URL path and query may hold unencoded (RFC 3986): no control
# character or space (browsers drop tabs and newlines, so "/\t/evil" would become "//evil"), no
# backslash (read as "/"), and no second "/" at the start (a scheme-relative "//host").
_OWN_PATH: Final = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?#]*")
# The same characters percent-encoded, for whatever decodes the target once more on its way.
_ENCODED_TRAPS: Final = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff]|5[Cc])|^/%2[Ff]")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path of this site, else the dashboard."""
    if target and len(target) <= 2000 and _OWN_PATH.fullmatch(target) and not _ENCODED_TRAPS.search(target):
        return target
    return "/tableau-de-bord"
