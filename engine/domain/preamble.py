"""What a commercial call says before anything else (issue 18, article L221-16 of the Code de la
consommation: who calls, on whose behalf, that the call is commercial) and how the callee objects to
further calls: the texts our French voice speaks (engine/media/spoken.py)."""

from __future__ import annotations

from typing import Final

# How a key is said in the preamble.
KEY_WORDS: Final = {
    "0": "zéro",
    "1": "un",
    "2": "deux",
    "3": "trois",
    "4": "quatre",
    "5": "cinq",
    "6": "six",
    "7": "sept",
    "8": "huit",
    "9": "neuf",
    "#": "dièse",
}


def opt_out_key(raw: str) -> str:
    """A key the callee may press to object: one digit or `#`; never `*` (the greeting's) nor `9` (the
    transfer's)."""
    key = raw.strip()
    if key not in KEY_WORDS or key == "9":
        raise ValueError(f"expected one key among 0-8 and #, got {raw!r}")
    return key


def _company(company: str | None) -> str | None:
    name = " ".join((company or "").split())
    return name or None


def preamble_text(company: str | None, key: str) -> str:
    """The preamble: a commercial call, whose, and the key that stops further calls."""
    name = _company(company)
    who = f"de la part de {name}" if name else "automatisé"
    by = f" par {name}" if name else ""
    return (
        f"Bonjour, ceci est un appel commercial {who}, pour vous présenter une offre. "
        f"Pour ne plus être appelé{by}, appuyez sur la touche {KEY_WORDS[key]}."
    )


def opt_out_text(company: str | None) -> str:
    """What the callee hears after the opt-out key, before we hang up."""
    name = _company(company)
    by = f" par {name}" if name else ""
    return f"Votre numéro ne sera plus appelé{by}. Merci, au revoir."


def callback_text(company: str | None, key: str) -> str:
    """What a person calling back a number we presented hears (L221-17, L34-5: a working way to object)."""
    name = _company(company)
    who = f"par {name}, " if name else ""
    by = f" par {name}" if name else ""
    return (
        f"Bonjour, vous avez été appelé depuis ce numéro {who}par un appel automatisé. "
        f"Pour ne plus être appelé{by}, appuyez sur la touche {KEY_WORDS[key]}. Sinon, raccrochez."
    )


def dialled_e164(raw: str) -> str | None:
    """The number a caller dialled, as a trunk wrote it (0162000001, +33162000001, 0033…, 33…, 162000001),
    in E.164; None when it is none of these French forms."""
    digits = raw.strip()
    if digits.startswith("+"):
        rest = digits[1:]
        return digits if rest.isdigit() and 2 <= len(rest) <= 15 and rest[0] != "0" else None
    if not digits.isdigit():
        return None
    if digits.startswith("0033"):
        digits = digits[4:]
    elif digits.startswith("33") and len(digits) == 11:
        digits = digits[2:]
    elif digits.startswith("0") and len(digits) == 10:
        digits = digits[1:]
    return f"+33{digits}" if len(digits) == 9 and digits[0] != "0" else None
