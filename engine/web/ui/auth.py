"""« Connexion », « Déconnexion » and « Mot de passe oublié » (a one-time link sent through the relay).

Failed logins count in the same shared window as http.php and the API (the logins service), so a
guesser gains nothing by switching interface.
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from aiohttp import web

from engine import mailer
from engine.domain.accounts import check_password, normalize_email
from engine.errors import InvalidInput, NotFound
from engine.store import rates, webspace
from engine.store.accounts import account_by_email, get_account, set_password
from engine.web import sessions
from engine.web.remote import client_address
from engine.web.ui.core import Page, page, public_page, safe_next

log = structlog.get_logger(__name__)

RESET_REQUESTS: Final = "password_reset"
RESET_REQUESTS_PER_HOUR: Final = 3
_background: set[asyncio.Task[None]] = set()


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
    await webspace.prune(p.db)
    response = p.redirect(safe_next(values["suite"]))
    await sessions.log_in(p.request, response, p.db, p.settings, account)
    log.info("ui.login", account_id=str(account.id))
    return response


@page
async def logout(p: Page) -> web.StreamResponse:
    response = p.redirect("/connexion", "Vous êtes déconnecté.")
    await sessions.log_out(response, p.db, p.visitor)
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
    keys = [f"account:{login_name}", f"client:{client_address(p.request)}"]
    blocked = await rates.blocked_for_s(
        p.db, RESET_REQUESTS, keys, limit=RESET_REQUESTS_PER_HOUR, window_s=3600
    )
    if blocked is None:
        await rates.record(p.db, RESET_REQUESTS, keys)
        try:
            account = await account_by_email(p.db, login_name)
        except NotFound:
            log.info("ui.reset_unknown_email")
        else:
            token = sessions.new_token()
            await webspace.create_reset(p.db, account.id, token)
            link = f"{_public_base(p)}/mot-de-passe/{token}"
            # In the background: the answer must take as long whether the address is a customer's or not.
            task = asyncio.create_task(_send_reset_mail(p, account.email, link))
            _background.add(task)
            task.add_done_callback(_background.discard)
    else:
        log.info("ui.reset_rate_limited")
    # The same answer in every case: this form does not tell who is a customer.
    return p.render("forgot.html", email=login_name, errors={}, sent=True)


async def _send_reset_mail(p: Page, to: str, link: str) -> None:
    minutes = int(webspace.RESET_VALIDITY.total_seconds() // 60)
    message = mailer.compose(
        p.settings,
        to=to,
        subject="Votre nouveau mot de passe",
        body=(
            "Bonjour,\n\n"
            "Vous avez demandé à changer le mot de passe de votre espace privé. Ouvrez ce lien pour en "
            f"choisir un nouveau (il est valable {minutes} minutes et ne sert qu'une fois) :\n\n{link}\n\n"
            "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : votre mot de passe "
            "actuel reste valable.\n"
        ),
    )
    if await mailer.send(p.settings, message):
        log.info("ui.reset_mail_sent")


@public_page
async def reset(p: Page) -> web.StreamResponse:
    token = p.request.match_info["token"]
    account_id = await webspace.reset_account(p.db, token)
    if account_id is None:
        response = p.render("reset.html", status=410, alive=False, errors={})
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    if p.request.method == "GET":
        response = p.render("reset.html", alive=True, errors={})
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    password, again = p.text("password"), p.text("password2")
    errors = {}
    try:
        check_password(password)
    except InvalidInput as exc:
        errors["password"] = exc.message_fr
    if not errors and password != again:
        errors["password2"] = "Les deux mots de passe ne sont pas identiques."
    if errors:
        return p.render("reset.html", status=400, alive=True, errors=errors)
    used_by = await webspace.use_reset(p.db, token)
    if used_by is None:
        return p.render("reset.html", status=410, alive=False, errors={})
    await set_password(p.db, used_by, password)
    owner = await get_account(p.db, used_by)
    # The owner proved they read the mailbox: earlier failed guesses no longer lock them out.
    await p.services.logins.forget_failures(owner.email)
    log.info("ui.password_reset", account_id=str(used_by))
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
