"""Pure account rules: logins, passwords, personal codes, sender numbers, default send options, titles."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from uuid import uuid4

import pytest

from engine.domain import accounts
from engine.domain.accounts import (
    Message,
    SendDefaults,
    check_credit_amount,
    check_password,
    check_sender,
    check_title,
    check_transfer,
    check_verifiable,
    code_digest,
    default_title,
    generate_code,
    generate_password,
    is_code,
    normalize_email,
)
from engine.errors import InvalidInput


def _code_of(call: object) -> str:
    with pytest.raises(InvalidInput) as info:
        call()  # type: ignore[operator]
    return info.value.code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jean.Dupont@Example.FR", "jean.dupont@example.fr"),
        ("  contact@societe.fr \n", "contact@societe.fr"),
        ("demo@vocalcast.local", "demo@vocalcast.local"),
    ],
)
def test_emails_are_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "jean", "jean@", "@example.fr", "jean@example", "a b@example.fr", "a@@b.fr", "a@b..fr"]
)
def test_malformed_emails_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_email(raw)
    assert info.value.code == "email_invalid"
    assert info.value.message_fr == "Adresse e-mail invalide."


def test_overlong_email_is_refused() -> None:
    assert _code_of(lambda: normalize_email("a" * 250 + "@b.fr")) == "email_invalid"


@pytest.mark.parametrize(
    "password",
    [
        "court",
        "123456789",
        "mot:de:passe-long",
        " espace-devant",
        "espace-derriere ",
        "tab\tulation0",
        "x" * 129,
    ],
)
def test_passwords_the_service_cannot_carry_are_refused(password: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_password(password)
    assert info.value.code == "password_invalid"
    assert "10" in info.value.message_fr
    assert "«" in info.value.message_fr


@pytest.mark.parametrize("password", ["0123456789", "Un mot de passe tout à fait correct", "x" * 128])
def test_reasonable_passwords_pass(password: str) -> None:
    check_password(password)


def test_generated_passwords_are_readable_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
        assert not set(password) & set("01ilo")  # nothing to misread when copying by hand
        check_password(password)


def test_personal_codes_are_eight_random_digits() -> None:
    codes = [generate_code() for _ in range(500)]
    assert all(re.fullmatch(r"\d{8}", c) and is_code(c) for c in codes)
    assert len(set(codes)) > 490  # 500 draws from 10^8: a repeat is very unlikely, many would be a bug
    assert {c[0] for c in codes} == set("0123456789")  # leading zeros included (0.9^500 to miss one)


@pytest.mark.parametrize("text", ["1234567", "123456789", "1234567a", "", "12 345 678"])
def test_only_eight_digits_are_a_code(text: str) -> None:
    assert not is_code(text)


def test_code_digest_is_a_keyed_hmac() -> None:
    digest = code_digest("12345678", "secret-a")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == code_digest("12345678", "secret-a")
    assert digest != code_digest("12345679", "secret-a")
    assert digest != code_digest("12345678", "secret-b")
    # Not a plain hash of the code: without the server secret, nobody can test the 10^8 codes.
    assert digest != hashlib.sha256(b"12345678").hexdigest()
    assert digest != hmac.new(b"12345678", b"", hashlib.sha256).hexdigest()
    with pytest.raises(ValueError, match="secret_key"):
        code_digest("12345678", "")


def test_a_french_fixed_number_is_a_valid_sender() -> None:
    check = check_sender("01 72 36 01 70")
    assert check.e164 == "+33172360170"
    assert not check.is_mobile
    assert not check.mobile_forbidden
    assert not check.in_automated_range


@pytest.mark.parametrize("raw", ["0162123456", "+33 9 48 12 34 56", "0271000000"])
def test_arcep_ranges_for_automated_calls_are_flagged(raw: str) -> None:
    assert check_sender(raw).in_automated_range


def test_a_mobile_may_be_declared_but_never_verified() -> None:
    check = check_sender("06 12 34 56 78")
    assert check.e164 == "+33612345678"
    assert check.is_mobile
    assert check.mobile_forbidden
    with pytest.raises(InvalidInput) as info:
        check_verifiable(check.e164, check.is_mobile)
    assert info.value.code == "sender_mobile"
    assert "ARCEP" in info.value.message_fr
    for prefix in accounts.AUTOMATED_CALLING_PREFIXES:
        assert prefix in info.value.message_fr
    check_verifiable("+33162360170", False)
    # ARCEP 2022-1583 (issue 18): a geographic number may not be presented by automated calls.
    with pytest.raises(InvalidInput) as info:
        check_verifiable("+33172360170", False)
    assert info.value.code == "sender_not_automated"


def test_overseas_numbers_are_french_senders() -> None:
    assert check_sender("0262123456").e164 == "+262262123456"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("+44 20 7946 0000", "sender_not_french"),
        ("0899123456", "sender_invalid"),
        ("01 23", "sender_invalid"),
        ("appelez-moi", "sender_invalid"),
    ],
)
def test_foreign_or_invalid_senders_are_refused(raw: str, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_sender(raw)
    assert info.value.code == code
    assert "émetteur" in info.value.message_fr


def test_transfer_numbers_follow_the_international_option() -> None:
    assert check_transfer("0612345678", allow_international=False) == "+33612345678"
    assert _code_of(lambda: check_transfer("+442079460000", allow_international=False)) == "transfer_invalid"
    assert check_transfer("+442079460000", allow_international=True) == "+442079460000"
    assert _code_of(lambda: check_transfer("0899123456", allow_international=True)) == "transfer_invalid"


def test_default_send_options_follow_the_manual() -> None:
    d = SendDefaults()
    assert (d.greeting_enabled, d.transfer_number, d.sender_number_id, d.retries) == (False, None, None, 0)
    assert d.retry_interval_s == 1800
    assert not d.voicemail_drop


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"retries": -1}, "retries_invalid"),
        ({"retries": accounts.MAX_RETRIES + 1}, "retries_invalid"),
        ({"retries": True}, "retries_invalid"),
        ({"retry_interval_s": 59}, "retry_interval_invalid"),
        ({"retry_interval_s": 24 * 3600 + 1}, "retry_interval_invalid"),
        ({"greeting_enabled": True}, "greeting_missing"),
    ],
)
def test_default_send_options_out_of_bounds_are_refused(kwargs: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SendDefaults(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == code
    assert info.value.message_fr


def test_default_send_options_bounds_are_inclusive() -> None:
    SendDefaults(retries=accounts.MAX_RETRIES, retry_interval_s=60)
    SendDefaults(retries=0, retry_interval_s=24 * 3600, greeting_enabled=True, greeting_message_id=uuid4())


@pytest.mark.parametrize("amount", [0, -1, True])
def test_credits_are_positive_whole_numbers(amount: int) -> None:
    assert _code_of(lambda: check_credit_amount(amount)) == "credit_amount"


def test_titles_are_cleaned_and_bounded() -> None:
    assert check_title("  Promo \n  de   printemps ") == "Promo de printemps"
    assert _code_of(lambda: check_title("   ")) == "title_invalid"
    assert _code_of(lambda: check_title("x" * 121)) == "title_invalid"
    assert check_title("x" * 120) == "x" * 120


def test_default_title_is_the_file_name_or_the_paris_date() -> None:
    winter = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # 14:05 in Paris (UTC+1)
    summer = datetime(2026, 7, 14, 8, 30, tzinfo=UTC)  # 10:30 in Paris (UTC+2)
    assert default_title("annonce_soldes.mp3", winter) == "annonce soldes"
    assert default_title("C:\\Users\\x\\accueil.WAV", winter) == "accueil"
    assert default_title(".mp3", winter) == ".mp3"
    assert default_title(None, winter) == "Message du 25/11/2026 à 14h05"
    assert default_title("", summer) == "Message du 14/07/2026 à 10h30"
    assert default_title(None, summer, is_greeting=True) == "Message d'accueil du 14/07/2026 à 10h30"
    with pytest.raises(ValueError, match="timezone"):
        default_title(None, datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_message_paths_are_under_the_media_dir() -> None:
    account_id, message_id = uuid4(), uuid4()
    message = Message(
        id=message_id,
        account_id=account_id,
        ref=1,
        title="t",
        origin="file",
        is_greeting=False,
        duration_s=2.0,
        audio_stem=PurePosixPath(f"{account_id}/{message_id}"),
        original_file=PurePosixPath(f"{account_id}/{message_id}.orig.mp3"),
        original_name="t.mp3",
        loudness_lufs=-20.0,
        true_peak_dbfs=-3.0,
        created_at=datetime.now(UTC),
    )
    media = Path("/srv/media")
    assert message.wav(media) == media / str(account_id) / f"{message_id}.wav"
    assert sorted(p.name for p in message.files(media)) == sorted(
        f"{message_id}.{ext}" for ext in ("alaw", "orig.mp3", "ulaw", "wav")
    )
