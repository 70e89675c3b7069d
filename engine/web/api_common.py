"""What every part of the JSON REST API shares: its middlewares (errors as JSON, bearer tokens) and the
helpers that read requests and write answers.

Errors are ``{"code": "...", "message": "<French>"}``: 400 invalid input, 401 missing or bad token,
402 credits, 404 not found (another account's objects too), 409 conflict with the current state,
413 too large, 415 not multipart, 422 an uploaded file refused, 429 throttled (Retry-After),
503 database unavailable. The OpenAPI document (engine/web/openapi.py) lists every status of every route.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import unquote
from uuid import UUID

import structlog
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from engine.domain.accounts import Account, InsufficientCredits, MessageInUse
from engine.errors import DatabaseUnavailable, InvalidInput, NotFound
from engine.services import Services
from engine.web.context import services_of
from engine.web.limits import read_at_most
from engine.web.remote import client_address

log = structlog.get_logger(__name__)

PREFIX: Final = "/api/v1"
ACCOUNT: Final = web.RequestKey("account", Account)
MAX_JSON_BYTES: Final = 2 * 1024 * 1024  # a pasted list of 10,000 numbers is about 150 kB
INT32_MAX: Final = 2**31 - 1  # message references
INT64_MAX: Final = 2**63 - 1  # contact, group, token, ledger ids
PUBLIC_PATHS: Final = frozenset({f"{PREFIX}/openapi.json"})
DB_RETRY_AFTER_S: Final = 5

# Domain error codes that are a conflict with the current state rather than bad input.
CONFLICT_CODES: Final = frozenset({"contact_exists", "group_exists", "send_state", "too_many_groups"})
# A body that names a message the account does not have: as for a path, the answer is 404.
NOT_FOUND_CODES: Final = frozenset({"message_not_found", "greeting_not_found"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


class ApiError(Exception):
    """An answer other than success, decided by a handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message_fr: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message_fr = message_fr
        self.headers = headers or {}
        self.details = details


def bad_request(code: str, message_fr: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(400, code, message_fr, details=details)


def not_found(message_fr: str = "Élément introuvable.") -> ApiError:
    return ApiError(404, "not_found", message_fr)


def error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message_fr}
    if error.details is not None:
        body["details"] = error.details
    return json_response(body, status=error.status, headers=error.headers)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        body,
        status=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        dumps=lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")),
    )


def no_content() -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


# --- errors ---------------------------------------------------------------------------------------------

_HTTP_ERRORS_FR: Final = {
    400: ("bad_request", "Requête invalide."),
    404: ("not_found", "Ressource introuvable."),
    405: ("method_not_allowed", "Méthode non autorisée pour cette ressource."),
    413: ("too_large", "Requête trop volumineuse."),
}


def _translate(exc: Exception) -> ApiError | None:
    """The API's answer for an error raised below the handlers; None for an unexpected one."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DatabaseUnavailable):
        return ApiError(503, exc.code, exc.message_fr, headers={"Retry-After": str(DB_RETRY_AFTER_S)})
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.message_fr)
    if isinstance(exc, MessageInUse | InsufficientCredits):
        return ApiError(409 if isinstance(exc, MessageInUse) else 402, exc.code, exc.message_fr)
    if isinstance(exc, InvalidInput):
        if exc.code in NOT_FOUND_CODES:
            return ApiError(404, exc.code, exc.message_fr)
        return ApiError(409 if exc.code in CONFLICT_CODES else 400, exc.code, exc.message_fr)
    if isinstance(exc, web.HTTPException) and exc.status in _HTTP_ERRORS_FR:
        code, message = _HTTP_ERRORS_FR[exc.status]
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return ApiError(exc.status, code, message, headers=headers)
    return None


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:  # the task boundary of one request: every error becomes a JSON answer
        error = _translate(exc)
        if error is None:
            if isinstance(exc, web.HTTPException):
                raise
            log.exception("api.internal_error", method=request.method, path=request.path)
            error = ApiError(500, "internal", "Une erreur interne est survenue.")
        return error_response(error)


# --- authentication -------------------------------------------------------------------------------------

UNAUTHORIZED_FR: Final = (
    "Jeton d'accès manquant, invalide ou révoqué : envoyez l'en-tête « Authorization: Bearer <jeton> »."
)
THROTTLED_FR: Final = "Trop d'échecs d'identification depuis votre adresse : réessayez plus tard."


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    request[ACCOUNT] = await authenticate(services_of(request), request)
    return await handler(request)


async def authenticate(services: Services, request: web.Request) -> Account:
    """The account whose live token the request carries, else 401 (429 once the client is throttled).

    A failed token counts as a failed login of the client address, in the same throttle as http.php and
    e-mail. A valid token is never refused for the throttle: tokens are 256-bit random, so refusing them
    would protect nothing and would lock out every client behind the same address as a broken script.
    """
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", UNAUTHORIZED_FR, headers={"WWW-Authenticate": "Bearer"})
    account = await services.accounts.by_token(secret)
    if account is not None:
        if not await services.logins.client_allowed(account.id, client_address(request)):
            raise ApiError(403, "client_not_allowed", CLIENT_NOT_ALLOWED_FR)
        return account
    wait_s = await services.logins.token_failure(client_address(request))
    if wait_s is not None:
        raise ApiError(429, "throttled", THROTTLED_FR, headers={"Retry-After": str(math.ceil(wait_s))})
    raise ApiError(
        401, "unauthorized", UNAUTHORIZED_FR, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def account_of(request: web.Request) -> Account:
    return request[ACCOUNT]


# --- request input ----------------------------------------------------------------------------------------


def clean_text(value: str) -> str:
    """Text PostgreSQL can store: NUL characters dropped, lone surrogates replaced."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _cleaned(v) for k, v in value.items()}
    return value


CLIENT_NOT_ALLOWED_FR: Final = (
    "Ce compte n'accepte les requêtes que depuis ses propres serveurs : cette adresse n'en fait pas partie."
)
BAD_JSON_FR: Final = "Le corps de la requête doit être un objet JSON."


async def json_body(request: web.Request, fields: frozenset[str]) -> dict[str, Any]:
    """The request's JSON object; 400 when it is not one or has a field not in ``fields``, 413 too big."""
    raw = await read_at_most(request, MAX_JSON_BYTES)
    if raw is None:
        raise ApiError(
            413, "too_large", f"Requête trop volumineuse ({MAX_JSON_BYTES // 1024 // 1024} Mo au plus)."
        )
    try:
        data = json.loads(raw or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise bad_request("bad_json", BAD_JSON_FR) from exc
    if not isinstance(data, dict):
        raise bad_request("bad_json", BAD_JSON_FR)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise bad_request("unknown_field", f"Champ inconnu : « {clean_text(unknown[0])[:40]} ».")
    cleaned: dict[str, Any] = _cleaned(data)
    return cleaned


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Field:
    """Reads one field of a JSON body with its type checked (bool is not an int, 2.0 is)."""

    name: str

    def _bad(self, expected: str) -> ApiError:
        return bad_request("field_invalid", f"Le champ « {self.name} » doit être {expected}.")

    def _required(self) -> ApiError:
        return bad_request("field_missing", f"Le champ « {self.name} » est obligatoire.")

    def raw(self, body: dict[str, Any], *, required: bool = False) -> Any:
        if self.name not in body:
            if required:
                raise self._required()
            return MISSING
        return body[self.name]

    def text(self, body: dict[str, Any], *, required: bool = False, max_length: int = 10_000) -> Any:
        """str, None when null, MISSING when absent."""
        value = self.raw(body, required=required)
        if value is MISSING or value is None:
            return value
        if not isinstance(value, str) or len(value) > max_length:
            raise self._bad(f"un texte de {max_length} caractères au plus")
        return value

    def integer(self, body: dict[str, Any], *, lo: int, hi: int, required: bool = False) -> Any:
        value = self.raw(body, required=required)
        if value is MISSING or value is None:
            return value
        return as_int(value, lo, hi, self._bad(f"un entier de {lo} à {hi}"))

    def boolean(self, body: dict[str, Any], *, required: bool = False) -> Any:
        value = self.raw(body, required=required)
        if value is MISSING or value is None or isinstance(value, bool):
            return value
        raise self._bad("true ou false")

    def int_list(self, body: dict[str, Any], *, hi: int, max_items: int) -> Any:
        value = self.raw(body)
        if value is MISSING or value is None:
            return value
        error = self._bad(f"une liste d'au plus {max_items} entiers positifs")
        if not isinstance(value, list) or len(value) > max_items:
            raise error
        return [as_int(item, 1, hi, error) for item in value]

    def text_list(self, body: dict[str, Any], *, max_items: int, max_length: int) -> Any:
        value = self.raw(body)
        if value is MISSING or value is None:
            return value
        error = self._bad(f"une liste d'au plus {max_items} textes")
        if not isinstance(value, list) or len(value) > max_items:
            raise error
        if not all(isinstance(item, str) and len(item) <= max_length for item in value):
            raise error
        return value


def as_int(value: Any, lo: int, hi: int, error: ApiError) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error
    if isinstance(value, float) and not value.is_integer():
        raise error
    number = int(value)  # JSON Schema's integers include 2.0
    if not lo <= number <= hi:
        raise error
    return number


def not_null(value: T | None, name: str) -> T:
    if value is None:
        raise bad_request("field_invalid", f"Le champ « {name} » ne peut pas être null.")
    return value


# ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses.
_INTEGER: Final = re.compile(r"-?[0-9]{1,20}")


def query_int(request: web.Request, name: str, *, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    error = bad_request("query_invalid", f"Le paramètre « {name} » doit être un entier de {lo} à {hi}.")
    if not _INTEGER.fullmatch(raw.strip()):
        raise error
    return as_int(int(raw), lo, hi, error)


def query_text(request: web.Request, name: str, *, max_length: int = 200) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if len(raw) > max_length:
        raise bad_request("query_invalid", f"Le paramètre « {name} » est trop long.")
    return clean_text(raw)


def query_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in {"true", "false"}:
        raise bad_request("query_invalid", f"Le paramètre « {name} » doit valoir true ou false.")
    return raw == "true"


def query_datetime(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    return parse_datetime(raw, name, code="query_invalid")


def parse_datetime(raw: str, name: str, *, code: str = "field_invalid") -> datetime:
    """ISO 8601 with its offset (``2030-09-12T15:30:00+02:00`` or ``...Z``)."""
    error = bad_request(
        code, f"« {name} » doit être une date ISO 8601 avec son décalage horaire (2030-09-12T15:30:00+02:00)."
    )
    try:
        value = datetime.fromisoformat(raw.strip())
        if value.tzinfo is None or value.utcoffset() is None:
            raise error
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 or 9999 moved to UTC
        raise error from exc


def path_int(request: web.Request, name: str, *, hi: int = INT64_MAX) -> int:
    """A numeric id of the path; an id that cannot exist is simply not found."""
    raw = request.match_info[name]
    if not _INTEGER.fullmatch(raw) or not 1 <= int(raw) <= hi:
        raise not_found()
    return int(raw)


def path_uuid(request: web.Request, name: str) -> UUID:
    try:
        return UUID(request.match_info[name])
    except ValueError as exc:
        raise not_found() from exc


@dataclass(frozen=True, slots=True)
class Upload:
    """A multipart/form-data request: the file's bytes and name, and the text fields beside it."""

    data: bytes
    filename: str | None
    fields: dict[str, str]


NOT_MULTIPART_FR: Final = "Envoyez le fichier en multipart/form-data, dans le champ « file »."
FIELD_MAX_BYTES: Final = 4096


async def read_upload(
    request: web.Request, *, fields: frozenset[str], max_bytes: int, too_large_fr: str
) -> Upload:
    """Read a multipart upload: its ``file`` part (413 past ``max_bytes``, read no further) and the text
    ``fields`` (400 for any other part). 415 when the request is not multipart/form-data."""
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "not_multipart", NOT_MULTIPART_FR)
    data: bytes | None = None
    filename: str | None = None
    texts: dict[str, str] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise bad_request("bad_multipart", NOT_MULTIPART_FR)
            if part.name == "file" and data is None:
                data = await _read_part(part, max_bytes, ApiError(413, "too_large", too_large_fr))
                filename = _filename(part.filename)
            elif part.name in fields and part.name not in texts:
                error = bad_request("field_invalid", f"Le champ « {part.name} » est trop long.")
                texts[part.name] = clean_text(
                    (await _read_part(part, FIELD_MAX_BYTES, error)).decode("utf-8", "replace")
                )
            else:
                name = clean_text(part.name or "")[:40]
                raise bad_request("unknown_field", f"Champ inconnu ou répété : « {name} ».")
    except (ValueError, HttpProcessingError) as exc:  # what aiohttp raises for a malformed multipart body
        raise bad_request("bad_multipart", NOT_MULTIPART_FR) from exc
    if data is None:
        raise bad_request("field_missing", "Le champ « file » est obligatoire.")
    return Upload(data, filename, texts)


def _filename(raw: str | None) -> str | None:
    """The upload's file name; percent-decoded, as some clients (aiohttp's, old PHP) encode non-ASCII names
    that way inside ``filename="..."`` while browsers and curl send the UTF-8 itself."""
    if not raw:
        return None
    try:
        name = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        name = raw
    return clean_text(name)[:255] or None


async def _read_part(part: BodyPartReader, max_bytes: int, too_large: ApiError) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def middlewares() -> list[Any]:
    """Outermost first: every error becomes JSON, then the token is checked."""
    return [_errors, _authenticate]
