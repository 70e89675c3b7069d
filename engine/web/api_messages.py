"""API: the account's message library — list, upload (WAV/MP3, converted before the answer), read,
rename, delete, and download the audio (the 8 kHz WAV callers hear, or the original upload)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from engine.domain.accounts import Message
from engine.errors import InvalidInput
from engine.web.api_common import (
    INT32_MAX,
    ApiError,
    Field,
    account_of,
    bad_request,
    iso,
    json_body,
    json_response,
    no_content,
    not_found,
    not_null,
    path_int,
    query_bool,
    read_upload,
)
from engine.web.context import services_of

# engine.media.audio's refusals of a file that arrived whole but cannot be a message.
_TOO_LARGE: Final = frozenset({"too_large"})
_CONTENT_TYPES: Final = {".mp3": "audio/mpeg", ".wav": "audio/wav"}


def message_json(message: Message) -> dict[str, Any]:
    return {
        "ref": message.ref,
        "title": message.title,
        "is_greeting": message.is_greeting,
        # Recorded by phone, it waits for the customer's confirmation before it becomes the default.
        "greeting_pending": message.greeting_pending,
        "origin": message.origin,
        "duration_s": round(message.duration_s, 3),
        "original_name": message.original_name,
        "created_at": iso(message.created_at),
    }


async def list_messages(request: web.Request) -> web.Response:
    greetings = query_bool(request, "greetings") or False
    messages = await services_of(request).messages.list(account_of(request).id, greetings_only=greetings)
    return json_response({"messages": [message_json(m) for m in messages]})


def _flag(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in {"true", "false", "1", "0"}:
        raise bad_request("field_invalid", f"Le champ « {name} » doit valoir true ou false.")
    return value in {"true", "1"}


async def upload_message(request: web.Request) -> web.Response:
    """A WAV or MP3 file becomes the account's next message; refused files leave nothing behind."""
    services = services_of(request)
    settings = services.settings
    too_large_fr = f"Fichier trop volumineux ({settings.audio_max_bytes // (1024 * 1024)} Mo au plus)."
    upload = await read_upload(
        request,
        fields=frozenset({"title", "greeting"}),
        max_bytes=settings.audio_max_bytes,
        too_large_fr=too_large_fr,
    )
    is_greeting = _flag(upload.fields.get("greeting"), "greeting")
    title = upload.fields.get("title")
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="vocalcast-upload-"))
    try:
        src = workdir / "upload"
        await asyncio.to_thread(src.write_bytes, upload.data)
        try:
            message = await services.messages.add(
                account_of(request).id,
                src,
                title=title if title and title.strip() else None,
                origin="file",
                is_greeting=is_greeting,
                original_name=upload.filename,
            )
        except InvalidInput as exc:
            if exc.code == "title_invalid":
                raise
            status = 413 if exc.code in _TOO_LARGE else 422
            raise ApiError(status, exc.code, exc.message_fr) from exc
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    return json_response(message_json(message), status=201)


def _ref(request: web.Request) -> int:
    return path_int(request, "ref", hi=INT32_MAX)


async def get_message(request: web.Request) -> web.Response:
    message = await services_of(request).messages.get(account_of(request).id, _ref(request))
    return json_response(message_json(message))


async def rename_message(request: web.Request) -> web.Response:
    ref = _ref(request)
    body = await json_body(request, frozenset({"title"}))
    title = not_null(Field("title").text(body, required=True, max_length=1000), "title")
    message = await services_of(request).messages.rename(account_of(request).id, ref, title)
    return json_response(message_json(message))


async def delete_message(request: web.Request) -> web.Response:
    await services_of(request).messages.delete(account_of(request).id, _ref(request))
    return no_content()


async def confirm_greeting(request: web.Request) -> web.Response:
    """A greeting recorded by phone becomes the account's default greeting (404 unless it waits)."""
    message = await services_of(request).messages.confirm_greeting(account_of(request).id, _ref(request))
    return json_response(message_json(message))


async def dismiss_greeting(request: web.Request) -> web.Response:
    """A greeting recorded by phone stays in the library only (404 unless it waits)."""
    message = await services_of(request).messages.dismiss_greeting(account_of(request).id, _ref(request))
    return json_response(message_json(message))


async def _file(path: Path, headers: dict[str, str]) -> web.Response:
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError as exc:
        raise not_found("Fichier audio introuvable.") from exc
    return web.Response(body=data, headers={"Cache-Control": "private, no-store", **headers})


async def download_audio(request: web.Request) -> web.Response:
    """The 8 kHz mono WAV: exactly what callers hear."""
    ref = _ref(request)
    path = await services_of(request).messages.listening_file(account_of(request).id, ref)
    return await _file(
        path,
        {
            "Content-Type": "audio/wav",
            "Content-Disposition": f'inline; filename="message-{ref}.wav"',
        },
    )


async def download_original(request: web.Request) -> web.Response:
    """The file as it was uploaded (or recorded)."""
    path, name = await services_of(request).messages.original_file(account_of(request).id, _ref(request))
    content_type = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return await _file(
        path,
        {"Content-Type": content_type, "Content-Disposition": _attachment(name)},
    )


def _attachment(name: str) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def add_routes(api: web.Application) -> None:
    api.router.add_get("/messages", list_messages, allow_head=False)
    api.router.add_post("/messages", upload_message)
    api.router.add_get("/messages/{ref}", get_message, allow_head=False)
    api.router.add_patch("/messages/{ref}", rename_message)
    api.router.add_delete("/messages/{ref}", delete_message)
    api.router.add_get("/messages/{ref}/audio", download_audio, allow_head=False)
    api.router.add_get("/messages/{ref}/original", download_original, allow_head=False)
    api.router.add_post("/messages/{ref}/confirm-greeting", confirm_greeting)
    api.router.add_post("/messages/{ref}/dismiss-greeting", dismiss_greeting)
