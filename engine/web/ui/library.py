"""« Messages enregistrés » (listen, rename, delete; confirm or dismiss a greeting recorded by phone) and
« Enregistrer un message » (WAV/MP3 upload).

Uploads are streamed to a temporary file (never held in memory) and handed to the messages service, which
converts, checks and stores them, or refuses them with a French reason and stores nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Final

from aiohttp import BodyPartReader, web

from engine.domain.accounts import MessageInUse
from engine.errors import InvalidInput, NotFound
from engine.web import sessions
from engine.web.ui.core import Page, page, upload_page

_CHUNK_BYTES: Final = 1024 * 1024
_FIELD_MAX_BYTES: Final = 4096  # title, csrf, the greeting box: anything longer is not ours


def _ref(p: Page) -> int:
    raw = p.request.match_info["ref"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    return int(raw)


async def _render_list(p: Page, *, errors: dict[int, str] | None = None, status: int = 200) -> web.Response:
    messages = await p.services.messages.list(p.account.id)
    pending = [m for m in messages if m.greeting_pending]
    return p.render("messages.html", status=status, messages=messages, pending=pending, errors=errors or {})


@page
async def messages(p: Page) -> web.StreamResponse:
    return await _render_list(p)


@page
async def rename(p: Page) -> web.StreamResponse:
    ref = _ref(p)
    try:
        message = await p.services.messages.rename(p.account.id, ref, p.text("title"))
    except InvalidInput as exc:
        return await _render_list(p, errors={ref: exc.message_fr}, status=400)
    return p.redirect("/messages", f"Message n° {message.ref} renommé.")


@page
async def delete(p: Page) -> web.StreamResponse:
    ref = _ref(p)
    try:
        await p.services.messages.delete(p.account.id, ref)
    except MessageInUse as exc:
        return await _render_list(p, errors={ref: exc.message_fr}, status=409)
    return p.redirect("/messages", f"Message n° {ref} supprimé.")


@page
async def confirm_greeting(p: Page) -> web.StreamResponse:
    ref = _ref(p)
    try:
        await p.services.messages.confirm_greeting(p.account.id, ref)
    except NotFound as exc:
        return await _render_list(p, errors={ref: exc.message_fr}, status=404)
    note = "" if p.account.defaults.greeting_enabled else " Activez-le dans « Paramètres » pour vos envois."
    return p.redirect(
        "/messages", f"Le message d'accueil n° {ref} est désormais votre message d'accueil.{note}"
    )


@page
async def dismiss_greeting(p: Page) -> web.StreamResponse:
    ref = _ref(p)
    try:
        await p.services.messages.dismiss_greeting(p.account.id, ref)
    except NotFound as exc:
        return await _render_list(p, errors={ref: exc.message_fr}, status=404)
    return p.redirect(
        "/messages", f"Message d'accueil n° {ref} ignoré : votre message d'accueil par défaut ne change pas."
    )


@page
async def listen(p: Page) -> web.StreamResponse:
    path = await p.services.messages.listening_file(p.account.id, _ref(p))
    if not await asyncio.to_thread(path.is_file):
        raise web.HTTPNotFound()
    return web.FileResponse(
        path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=300"}
    )


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_FIELD_MAX_BYTES):
        data += chunk
        if len(data) > _FIELD_MAX_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=_FIELD_MAX_BYTES, actual_size=len(data))
    return data.decode("utf-8", errors="replace")


async def _save_part(part: BodyPartReader, target: Path, max_bytes: int) -> None:
    """Stream a file part to ``target``; past ``max_bytes`` (+1, so the size check still refuses it) the
    rest is read and dropped."""
    written = 0
    buffer = bytearray()
    with target.open("wb") as out:  # opening is a metadata operation; writes go to a thread
        while chunk := await part.read_chunk(_CHUNK_BYTES):
            if written < max_bytes + 1:
                keep = chunk[: max_bytes + 1 - written]
                buffer += keep
                written += len(keep)
            if len(buffer) >= _CHUNK_BYTES:
                await asyncio.to_thread(out.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(out.write, bytes(buffer))


@upload_page
async def upload(p: Page) -> web.StreamResponse:
    if p.request.method == "GET":
        return p.render("message_new.html", values={"title": "", "greeting": ""}, errors={})
    values = {"title": "", "greeting": ""}
    errors: dict[str, str] = {}
    csrf = ""
    with tempfile.TemporaryDirectory(prefix="vocalcast-upload-") as tmp:
        saved: Path | None = None
        filename = ""
        reader = await p.request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                # The token comes first in our form: nothing is written for a forged request.
                if not sessions.csrf_ok(p.visitor, csrf):
                    return p.render(
                        "error.html",
                        status=403,
                        title="Formulaire expiré",
                        text="Ce formulaire a expiré. Rechargez la page et recommencez.",
                    )
                filename = (part.filename or "").strip()
                if filename:
                    saved = Path(tmp) / "upload"
                    await _save_part(part, saved, p.settings.audio_max_bytes)
            elif part.name in {"title", "greeting", "csrf"}:
                value = await _read_field(part)
                if part.name == "csrf":
                    csrf = value
                else:
                    values[part.name] = value.strip()
        if not sessions.csrf_ok(p.visitor, csrf):
            return p.render("error.html", status=403, title="Formulaire expiré", text="Rechargez la page.")
        if saved is None:
            errors["file"] = "Choisissez un fichier WAV ou MP3."
            return p.render("message_new.html", status=400, values=values, errors=errors)
        try:
            message = await p.services.messages.add(
                p.account.id,
                saved,
                title=values["title"] or None,
                origin="file",
                is_greeting=bool(values["greeting"]),
                original_name=filename,
            )
        except InvalidInput as exc:
            errors["title" if exc.code == "title_invalid" else "file"] = exc.message_fr
            return p.render("message_new.html", status=400, values=values, errors=errors)
    kind = "Message d'accueil" if message.is_greeting else "Message"
    return p.redirect("/messages", f"{kind} enregistré : référence n° {message.ref} « {message.title} ».")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/messages", messages)
    app.router.add_get("/messages/nouveau", upload)
    app.router.add_post("/messages/nouveau", upload)
    app.router.add_post("/messages/{ref}/renommer", rename)
    app.router.add_post("/messages/{ref}/supprimer", delete)
    app.router.add_post("/messages/{ref}/accueil/confirmer", confirm_greeting)
    app.router.add_post("/messages/{ref}/accueil/ignorer", dismiss_greeting)
    app.router.add_get("/messages/{ref}/ecoute", listen)
