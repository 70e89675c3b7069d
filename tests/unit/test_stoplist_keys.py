"""How a number is keyed on a stop list (engine/domain/stoplists.py): SHA-256 while its clear form is
known (a customer's hashed list meets it), HMAC-SHA256 under the server secret once it is erased."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from engine.domain.stoplists import keyed_hash, lookup_hashes, number_hash

A = "+33612345678"


def test_the_plain_key_is_the_sha256_a_customer_computes() -> None:
    assert number_hash(A) == hashlib.sha256(A.encode()).hexdigest()


def test_the_keyed_hash_needs_the_secret_and_differs_from_the_plain_one() -> None:
    keyed = keyed_hash(A, "s3cret")
    assert keyed == hmac.new(b"s3cret", A.encode(), hashlib.sha256).hexdigest()
    assert keyed != number_hash(A) and keyed != keyed_hash(A, "other")
    assert len(keyed) == 64 and int(keyed, 16) >= 0  # fits the stop lists' key column (64 hex digits)


def test_look_ups_with_the_secret_try_both_forms() -> None:
    assert lookup_hashes(A, None) == (number_hash(A),)
    assert lookup_hashes(A, "k") == (number_hash(A), keyed_hash(A, "k"))


@pytest.mark.parametrize("bad", ["0612345678", "33612345678", ""])
def test_only_e164_numbers_are_keyed(bad: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        keyed_hash(bad, "k")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        keyed_hash(A, "")
