"""« Connexion », « Déconnexion » and « Mot de passe oublié » (a one-time link sent through the relay).

Failed logins count in the same shared window as http.php and the API (the logins service), so a
guesser gains nothing by switching interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import structlog
from aiohttp import web

from engine.domain.accounts import normalize_email
from engine.errors import InvalidInput
from engine.web import sessions
from engine.web.remote import client_address
from engine.web.ui.core import Page, page, public_page, safe_next

log = structlog.get_logger(__name__)

# What the logins service refuses → the field it belongs beside.
PASSWORD_FIELD_OF: Final = {"current": "current", "new": "password", "confirmation": "password2"}


def password_errors(refusals: Mapping[str, str]) -> dict[str, str]:
    return {PASSWORD_FIELD_OF[part]: reason for part, reason in refusals.items()}


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/tableau-de-bord")


@public_page
async def login(p: Page) -> web.StreamResponse:
    if p.visitor.account is not None and p.request.method == "GET":
        return p.redirect(safe_next(p.text("suite")))
    values = {"email": p.text("email"), "suite": p.text("suite")}
    if p.request.method == "GET":
        return p.render("login.html", values=values, error="")
    result = await p.services.logins.password(
        values["email"], p.text("password"), client=client_address(p.request)
    )
    if result.retry_after_s is not None:
        minutes = max(1, round(result.retry_after_s / 60))
        error = (
            f"Trop de tentatives de connexion. Par sécurité, réessayez dans {minutes} minute"
            f"{'s' if minutes > 1 else ''}, ou utilisez « mot de passe oublié »."
        )
        return p.render("login.html", status=429, values=values, error=error)
    account = result.account
    if account is None:
        return p.render(
            "login.html", status=401, values=values, error="Adresse e-mail ou mot de passe incorrect."
        )
    response = p.redirect(safe_next(values["suite"]))
    await sessions.log_in(p.request, response, p.services, account)
    log.info("ui.login", account_id=str(account.id))
    return response


@page
async def logout(p: Page) -> web.StreamResponse:
    response = p.redirect("/connexion", "Vous êtes déconnecté.")
    await sessions.log_out(response, p.services, p.visitor)
    return response


def _public_base(p: Page) -> str:
    configured: str = p.settings.public_url.rstrip("/")
    if configured:
        return configured
    # Not the Host header (anyone can write it): the address this request actually reached.
    host, port = p.request.transport.get_extra_info("sockname")[:2] if p.request.transport else ("", 0)
    return f"http://{host or '127.0.0.1'}:{port or p.settings.http_port}"


@public_page
async def forgot(p: Page) -> web.StreamResponse:
    email = p.text("email")
    if p.request.method == "GET":
        return p.render("forgot.html", email=email, errors={}, sent=False)
    try:
        login_name = normalize_email(email)
    except InvalidInput as exc:
        return p.render("forgot.html", status=400, email=email, errors={"email": exc.message_fr}, sent=False)
    base = _public_base(p)
    await p.services.logins.request_reset(
        login_name, client=client_address(p.request), link=lambda token: f"{base}/mot-de-passe/{token}"
    )
    # The same answer in every case: this form does not tell who is a customer.
    return p.render("forgot.html", email=login_name, errors={}, sent=True)


@public_page
async def reset(p: Page) -> web.StreamResponse:
    token = p.request.match_info["token"]
    if p.request.method == "GET":
        alive = await p.services.logins.reset_link_alive(token)
        response = p.render("reset.html", status=200 if alive else 410, alive=alive, errors={})
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    change = await p.services.logins.reset_password(
        token, new=p.text("password"), confirmation=p.text("password2")
    )
    if change is None:
        response = p.render("reset.html", status=410, alive=False, errors={})
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    if not change.done:
        return p.render("reset.html", status=400, alive=True, errors=password_errors(change.refusals))
    response = p.redirect("/connexion", "Votre mot de passe a été changé. Connectez-vous avec le nouveau.")
    response.del_cookie(sessions.SESSION_COOKIE, path="/")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    for path, handler in (
        ("/connexion", login),
        ("/mot-de-passe-oublie", forgot),
        ("/mot-de-passe/{token}", reset),
    ):
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
    app.router.add_post("/deconnexion", logout)
