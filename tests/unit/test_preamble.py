"""The commercial call's spoken texts and its opt-out key setting (issue 18)."""

from __future__ import annotations

import pytest

from engine.domain.preamble import callback_text, dialled_e164, opt_out_key, opt_out_text, preamble_text
from engine.settings import Settings, SettingsError


def test_the_preamble_says_whose_commercial_call_it_is_and_the_key() -> None:
    text = preamble_text("  Acme   Énergie ", "0")
    assert text == (
        "Bonjour, ceci est un appel commercial de la part de Acme Énergie, pour vous présenter une offre. "
        "Pour ne plus être appelé par Acme Énergie, appuyez sur la touche zéro."
    )
    assert preamble_text(None, "#").endswith("Pour ne plus être appelé, appuyez sur la touche dièse.")
    assert "commercial automatisé" in preamble_text("   ", "1")


def test_the_thanks_name_the_company() -> None:
    assert opt_out_text("Acme") == "Votre numéro ne sera plus appelé par Acme. Merci, au revoir."
    assert opt_out_text(None) == "Votre numéro ne sera plus appelé. Merci, au revoir."


@pytest.mark.parametrize("raw", ["*", "9", "00", "a", ""])
def test_keys_the_flow_uses_or_that_are_no_key_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        opt_out_key(raw)


def test_the_setting_defaults_to_zero_and_names_itself_when_bad() -> None:
    assert Settings.from_env({}).opt_out_key == "0"
    assert Settings.from_env({"VOCALCAST_OPT_OUT_KEY": "#"}).opt_out_key == "#"
    with pytest.raises(SettingsError, match="VOCALCAST_OPT_OUT_KEY"):
        Settings.from_env({"VOCALCAST_OPT_OUT_KEY": "*"})


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0162000001", "+33162000001"),
        ("+33162000001", "+33162000001"),
        ("0033162000001", "+33162000001"),
        ("33162000001", "+33162000001"),
        ("162000001", "+33162000001"),
        ("+442079460958", "+442079460958"),
        ("3615", None),
        ("", None),
        ("+0612", None),
        ("01620000019", None),
    ],
)
def test_the_dialled_number_in_every_form_a_trunk_writes_it(raw: str, e164: str | None) -> None:
    assert dialled_e164(raw) == e164


def test_a_call_back_says_who_called_and_the_key() -> None:
    assert callback_text("Acme", "0") == (
        "Bonjour, vous avez été appelé depuis ce numéro par Acme, par un appel automatisé. "
        "Pour ne plus être appelé par Acme, appuyez sur la touche zéro. Sinon, raccrochez."
    )
