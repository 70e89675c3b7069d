"""Account rules: e-mail logins, passwords, personal codes, sender numbers, default send options, credits
and the entries of an account's message library.

Pure: no I/O. Password hashing (argon2, CPU-heavy) and every query live in the store (engine/store/
accounts.py, credits.py, senders.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Final, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from engine.domain.commercial import Purpose
from engine.domain.numbers import Refusal, normalize
from engine.domain.presented import Unusable, check_presented
from engine.domain.retries import MAX_EXTRA_ATTEMPTS
from engine.errors import InvalidInput, NotFound, VocalcastError

PARIS: Final = ZoneInfo("Europe/Paris")

# --- e-mail logins ------------------------------------------------------------------------------------

EMAIL_MAX_LENGTH: Final = 254  # RFC 5321's limit on a forward path
# Deliberately loose: one @, no spaces, a dot in the domain. Whether the mailbox exists is not ours to judge.
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


def normalize_email(raw: str) -> str:
    """The login as stored and compared: trimmed, lower-cased (logins are case-insensitive)."""
    email = unicodedata.normalize("NFKC", raw).strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(email):
        raise InvalidInput(
            "email_invalid",
            f"not an e-mail address: {raw!r}",
            message_fr="Adresse e-mail invalide.",
        )
    return email


# --- passwords ------------------------------------------------------------------------------------------

PASSWORD_MIN_LENGTH: Final = 10
# Bounds the argon2 input; nobody types more, and http.php/e-mail carry the password in clear text.
PASSWORD_MAX_LENGTH: Final = 128
# No ambiguous characters (0/o, 1/l/i): generated passwords are read aloud and copied by hand.
_PASSWORD_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 - an alphabet, not a password
_PASSWORD_GROUPS: Final = 4  # 4 groups of 4 from 31 characters: about 79 bits
_PASSWORD_GROUP_LENGTH: Final = 4


def check_password(password: str) -> None:
    """Refuse a password the service cannot carry or that is too weak.

    ':' is refused because the e-mail channel's subject is ``mot_de_passe:numéro:référence:...``.
    Leading/trailing spaces are refused because mail clients and forms trim them.
    """
    problem = None
    if len(password) < PASSWORD_MIN_LENGTH:
        problem = f"shorter than {PASSWORD_MIN_LENGTH} characters"
    elif len(password) > PASSWORD_MAX_LENGTH:
        problem = f"longer than {PASSWORD_MAX_LENGTH} characters"
    elif ":" in password:
        problem = "contains ':'"
    elif password != password.strip():
        problem = "starts or ends with a space"
    elif any(unicodedata.category(c).startswith("C") for c in password):
        problem = "contains control characters"
    if problem is not None:
        raise InvalidInput(
            "password_invalid",
            f"password refused: {problem}",
            message_fr=(
                f"Mot de passe refusé : il doit compter de {PASSWORD_MIN_LENGTH} à {PASSWORD_MAX_LENGTH} "
                "caractères, sans « : », sans espace au début ni à la fin."
            ),
        )


def generate_password() -> str:
    """A readable random password such as ``k7hq-m3xa-2bzt-9wpe``."""
    return "-".join(
        "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(_PASSWORD_GROUP_LENGTH))
        for _ in range(_PASSWORD_GROUPS)
    )


# --- personal codes -------------------------------------------------------------------------------------

# 8 digits: with 10,000 accounts a random guess hits one of them once in 10,000 tries (6 digits: 1 %).
CODE_DIGITS: Final = 8
_CODE: Final = re.compile(rf"\d{{{CODE_DIGITS}}}")
# Domain separation: the server secret also signs other things (web sessions).
_CODE_LABEL: Final = b"vocalcast.personal-code:"


def generate_code() -> str:
    """A fresh personal code: 8 random digits (leading zeros allowed, typed on a phone keypad)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_code(text: str) -> bool:
    return bool(_CODE.fullmatch(text))


def code_digest(code: str, secret_key: str) -> str:
    """HMAC-SHA256 (hex) of a personal code: what the database stores and the IVR looks up."""
    if not secret_key:
        raise ValueError("secret_key must not be empty")
    return hmac.new(secret_key.encode(), _CODE_LABEL + code.encode(), hashlib.sha256).hexdigest()


# --- sender numbers (numéro émetteur) -------------------------------------------------------------------

# ARCEP decision 2022-1583: since 2023 these blocks are reserved for automated calling systems, and
# mobile numbers may not be presented by them.
AUTOMATED_CALLING_PREFIXES: Final = (
    "0162", "0163", "0270", "0271", "0377", "0378", "0424", "0425", "0568", "0569", "0948", "0949",
)  # fmt: skip
_AUTOMATED_E164: Final = tuple("+33" + p[1:] for p in AUTOMATED_CALLING_PREFIXES)
SENDER_MOBILE_FR: Final = (
    "Un numéro mobile (06, 07) ne peut pas être présenté par un système d'appels automatisés "
    "(règle de l'ARCEP). Déclarez un numéro fixe, de préférence dans les tranches réservées à ces "
    "systèmes : " + ", ".join(AUTOMATED_CALLING_PREFIXES) + "."
)
SenderStatus = Literal["pending", "verified"]


@dataclass(frozen=True, slots=True)
class SenderCheck:
    """A sender number that may be declared: E.164, and what the operator should know before verifying."""

    e164: str
    is_mobile: bool
    in_automated_range: bool  # one of the ARCEP blocks recommended for automated calls

    @property
    def mobile_forbidden(self) -> bool:
        """Mobiles may be declared (pending) but never verified, so never presented."""
        return self.is_mobile


@dataclass(frozen=True, slots=True)
class SenderNumber:
    """A declared sender number of an account; only ``verified`` ones are ever presented."""

    id: int
    e164: str
    status: SenderStatus
    is_mobile: bool
    declared_at: datetime
    verified_at: datetime | None

    @property
    def in_automated_range(self) -> bool:
        return self.e164.startswith(_AUTOMATED_E164)

    @property
    def mobile_forbidden(self) -> bool:
        return self.is_mobile


def check_sender(raw: str) -> SenderCheck:
    """Accept a valid French number (metropolitan or overseas) as a sender number, or refuse it."""
    number = normalize(raw)
    if isinstance(number, Refusal):
        if number.code == "international":
            raise InvalidInput(
                "sender_not_french",
                f"sender number {raw!r} is not French",
                message_fr="Le numéro émetteur doit être un numéro français.",
            )
        raise InvalidInput(
            "sender_invalid",
            f"sender number {raw!r} refused: {number.code}",
            message_fr=f"Numéro émetteur refusé. {number.message_fr}",
        )
    return SenderCheck(
        e164=number.e164,
        is_mobile=number.is_mobile,
        in_automated_range=number.e164.startswith(_AUTOMATED_E164),
    )


def check_verifiable(e164: str, is_mobile: bool) -> None:
    """An operator may verify a declared number only when an automated call may present it: never a
    mobile, and only ARCEP's ranges for automated calls (decision 2022-1583, engine/domain/presented.py)."""
    if is_mobile:
        raise InvalidInput("sender_mobile", f"{e164} is a mobile number", message_fr=SENDER_MOBILE_FR)
    presented = check_presented(e164)
    if isinstance(presented, Unusable):
        raise InvalidInput(
            "sender_not_automated",
            f"{e164} may not be presented by automated calls ({presented.code})",
            message_fr=presented.message_fr,
        )


# --- default send options -------------------------------------------------------------------------------

MAX_RETRIES: Final = MAX_EXTRA_ATTEMPTS  # the dialer's own bound
RETRY_INTERVAL_MIN_S: Final = 60  # calling back sooner than a minute is harassment, and rarely answered
RETRY_INTERVAL_MAX_S: Final = 24 * 3600  # beyond a day, a new send is what the customer wants
DEFAULT_RETRY_INTERVAL_S: Final = 30 * 60


def check_transfer(raw: str, *, allow_international: bool) -> str:
    """A transfer number (touche 9) as E.164, or a refusal."""
    number = normalize(raw, allow_international=allow_international)
    if isinstance(number, Refusal):
        raise InvalidInput(
            "transfer_invalid",
            f"transfer number {raw!r} refused: {number.code}",
            message_fr=f"Numéro de transfert refusé. {number.message_fr}",
        )
    return number.e164


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDefaults:
    """Options used when a send comes through a channel that cannot carry them (http.php, e-mail).

    Retries are extra attempts after the first call (manual: none by default), ``retry_interval_s``
    apart, within 0..MAX_RETRIES and RETRY_INTERVAL_MIN_S..RETRY_INTERVAL_MAX_S.
    """

    greeting_enabled: bool = False
    greeting_message_id: UUID | None = None
    transfer_number: str | None = None  # E.164
    sender_number_id: int | None = None  # a verified sender number of the account; None: hidden
    retries: int = 0
    retry_interval_s: int = DEFAULT_RETRY_INTERVAL_S
    voicemail_drop: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not 0 <= self.retries <= MAX_RETRIES:
            raise InvalidInput(
                "retries_invalid",
                f"retries must be within 0..{MAX_RETRIES}, got {self.retries!r}",
                message_fr=f"Le nombre de renvois doit être compris entre 0 et {MAX_RETRIES}.",
            )
        if not RETRY_INTERVAL_MIN_S <= self.retry_interval_s <= RETRY_INTERVAL_MAX_S:
            raise InvalidInput(
                "retry_interval_invalid",
                f"retry_interval_s must be within {RETRY_INTERVAL_MIN_S}..{RETRY_INTERVAL_MAX_S}, "
                f"got {self.retry_interval_s!r}",
                message_fr="L'intervalle entre deux essais doit être compris entre 1 minute et 24 heures.",
            )
        if self.greeting_enabled and self.greeting_message_id is None:
            raise InvalidInput(
                "greeting_missing",
                "greeting enabled without a greeting message",
                message_fr="Choisissez le message d'accueil à utiliser.",
            )


# --- accounts -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the engine sees it; never carries the password hash nor the code digest."""

    id: UUID
    email: str
    allow_international: bool
    allow_voicemail_drop: bool
    balance: int  # available credits: the sum of the ledger's amounts
    reserved: int  # credits held by sends not yet finished
    created_at: datetime
    defaults: SendDefaults = field(default_factory=SendDefaults)
    # The purpose of the account's http.php and e-mail sends (engine/domain/commercial.py).
    default_purpose: Purpose = "information"


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A created account with its password and personal code: the only time they are seen in clear."""

    account: Account
    password: str
    code: str


class UnknownAccount(NotFound):
    """No account has this id (or e-mail)."""

    message_fr = "Compte introuvable."


# --- credits --------------------------------------------------------------------------------------------

LedgerKind = Literal["credit", "reserve", "consume", "release"]


class InsufficientCredits(VocalcastError):
    """The account's available credits cannot cover this reservation."""

    code = "credits"
    message_fr = "Vous devez créditer le compte"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One credit movement.

    ``amount`` changes the available balance (credit +N, reserve -N, release +N, consume 0: a consumed
    credit left the balance when it was reserved); ``held`` changes what the send holds (reserve +N,
    consume -N, release -N).
    """

    id: int
    at: datetime
    kind: LedgerKind
    amount: int
    held: int
    reason: str
    send_id: UUID | None


@dataclass(frozen=True, slots=True)
class Balance:
    """Credits of an account: ``available`` is the ledger's sum, ``reserved`` what unfinished sends hold."""

    available: int
    reserved: int


def check_credit_amount(amount: int) -> None:
    if isinstance(amount, bool) or amount <= 0:
        raise InvalidInput(
            "credit_amount",
            f"a credit must be a positive whole number, got {amount!r}",
            message_fr="Le nombre de crédits doit être un entier positif.",
        )


# --- the message library --------------------------------------------------------------------------------

TITLE_MAX_LENGTH: Final = 120
Origin = Literal["phone", "file"]
ORIGINS: Final = ("phone", "file")


class MessageInUse(VocalcastError):
    """A scheduled or running send uses this message."""

    code = "message_in_use"
    message_fr = (
        "Ce message est utilisé par un envoi programmé ou en cours : il ne peut pas être supprimé "
        "avant la fin ou l'annulation de cet envoi."
    )


@dataclass(frozen=True, slots=True)
class Message:
    """A message of an account's library; ``ref`` is the number customers type (1, 2, 3…).

    Paths are relative to the media directory: ``audio_stem`` + .wav/.alaw/.ulaw, and the original.
    """

    id: UUID
    account_id: UUID
    ref: int
    title: str
    origin: Origin
    is_greeting: bool
    duration_s: float
    audio_stem: PurePosixPath
    original_file: PurePosixPath
    original_name: str | None
    loudness_lufs: float
    true_peak_dbfs: float
    created_at: datetime
    # A greeting recorded by phone: it becomes the default greeting only once the customer confirms it
    # on the site (or the API); until then, and if dismissed, the default stays as it was.
    greeting_pending: bool = False

    def wav(self, media_dir: Path) -> Path:
        return media_dir / self.audio_stem.with_name(self.audio_stem.name + ".wav")

    def files(self, media_dir: Path) -> list[Path]:
        """Every file of the message, for removal."""
        stem = media_dir / self.audio_stem
        return [stem.with_name(f"{stem.name}.{ext}") for ext in ("wav", "alaw", "ulaw")] + [
            media_dir / self.original_file
        ]


def check_title(raw: str) -> str:
    """A title as stored: spaces collapsed, 1 to TITLE_MAX_LENGTH characters, no control characters."""
    title = " ".join("".join(c for c in raw if not unicodedata.category(c).startswith("C")).split())
    if not title or len(title) > TITLE_MAX_LENGTH:
        raise InvalidInput(
            "title_invalid",
            f"title must have 1 to {TITLE_MAX_LENGTH} characters",
            message_fr=f"Le titre doit compter de 1 à {TITLE_MAX_LENGTH} caractères.",
        )
    return title


def default_title(original_name: str | None, created_at: datetime, *, is_greeting: bool = False) -> str:
    """The uploaded file's name without extension, else « Message du 25/11/2026 à 14h05 » (Paris time)."""
    if original_name:
        stem = PurePosixPath(original_name.replace("\\", "/")).name
        stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
        cleaned = " ".join(stem.replace("_", " ").split())[:TITLE_MAX_LENGTH].strip()
        if cleaned:
            return cleaned
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    local = created_at.astimezone(PARIS)
    kind = "Message d'accueil" if is_greeting else "Message"
    return f"{kind} du {local:%d/%m/%Y} à {local:%H}h{local:%M}"
