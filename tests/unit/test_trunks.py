"""Trunk validation and their rendering into PJSIP configuration."""

from __future__ import annotations

import pytest

from engine.domain.trunks import Trunk
from engine.errors import InvalidInput
from engine.telephony.trunks import render_pjsip


@pytest.mark.parametrize(
    ("trunk", "code"),
    [
        (Trunk(name="Bad Name", host="192.0.2.1"), "trunk_name"),
        (Trunk(name="ok", host="192.0.2.1\n[evil]"), "trunk_host"),
        (Trunk(name="ok", host="192.0.2.1", port=0), "trunk_port"),
        (Trunk(name="ok", host="192.0.2.1", auth="digest"), "trunk_auth"),
        (Trunk(name="ok", host="192.0.2.1", auth="digest", username="u", password="p;x"), "trunk_value"),
        (Trunk(name="ok", host="192.0.2.1", codecs=("gsm",)), "trunk_codecs"),
        (Trunk(name="ok", host="192.0.2.1", max_cps=0), "trunk_limits"),
        # A value that ends with a line break matched `^...$` (re.match); every field is matched whole.
        (Trunk(name="ok\n", host="192.0.2.1"), "trunk_name"),
        (Trunk(name="ok", host="sip.example.fr\n"), "trunk_host"),
        (Trunk(name="ok", host="192.0.2.1", auth="digest", username="u\n", password="p"), "trunk_value"),
        (Trunk(name="ok", host="192.0.2.1", pai_number="0162000000\n[x]"), "trunk_value"),
        (Trunk(name="ok", host="192.0.2.1", deposit_prefix="999\n"), "trunk_deposit"),
        (Trunk(name="ok", host="192.0.2.1", deposit_header="X-A: 1\n[b]"), "trunk_deposit"),
        (Trunk(name="ok", host="192.0.2.1", codecs=("g722",)), "trunk_codecs"),  # no translator for it
        (Trunk(name="ok", host="192.0.2.1", routes=("mobiles",)), "trunk_route"),
        (Trunk(name="ok", host="192.0.2.1", routes=("+336;x",)), "trunk_route"),
        (Trunk(name="ok", host="192.0.2.1", identify=("10.0.0.0/8", "a b")), "trunk_identify"),
        (Trunk(name="ok", host="192.0.2.1", identify=("[evil]",)), "trunk_identify"),
        (Trunk(name="ok", host="192.0.2.1", outbound_proxy="sip:proxy;x=[1]"), "trunk_proxy"),
        (Trunk(name="ok", host="192.0.2.1", outbound_proxy="proxy.example.fr"), "trunk_proxy"),
        (Trunk(name="ok", host="192.0.2.1", registration_line=True), "trunk_line"),
    ],
)
def test_invalid_trunks_are_refused(trunk: Trunk, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        trunk.validate()
    assert err.value.code == code


def test_ip_trunk_renders_endpoint_aor_identify_without_auth() -> None:
    text = render_pjsip([Trunk(name="opa", host="192.0.2.10", port=5070, from_user="0162000000")])
    assert "[opa]\ntype = endpoint" in text
    assert "contact = sip:192.0.2.10:5070" in text
    assert "match = 192.0.2.10" in text
    assert "context = vocalcast-inbound" in text
    assert "from_user = 0162000000" in text
    assert "outbound_auth" not in text and "type = registration" not in text


def test_register_trunk_renders_auth_and_registration_and_disabled_trunks_vanish() -> None:
    text = render_pjsip(
        [
            Trunk(
                name="opb",
                host="sip.example.net",
                auth="register",
                username="u1",
                password="pw",
                from_domain="example.net",
            ),
            Trunk(name="off", host="192.0.2.2", enabled=False),
        ]
    )
    assert "[opb-auth]\ntype = auth" in text and "password = pw" in text
    assert "[opb-reg]\ntype = registration" in text and "client_uri = sip:u1@example.net" in text
    assert "outbound_auth = opb-auth" in text
    assert "[off]" not in text


def test_dial_string() -> None:
    assert Trunk(name="opa", host="192.0.2.1").dial_string("0612345678") == "PJSIP/0612345678@opa"


def test_session_timers_are_on_and_never_below_the_rfc_floor() -> None:
    trunk = Trunk(name="opa", host="192.0.2.10")
    assert "timers = always" in render_pjsip([trunk])
    assert "timers_sess_expires = 1800\n" in render_pjsip([trunk])
    assert "timers_sess_expires = 90\n" in render_pjsip([trunk], session_expires_s=90)
    with pytest.raises(ValueError, match="90 s at the least"):
        render_pjsip([trunk], session_expires_s=89)


def test_a_trunk_renders_its_routing_options() -> None:
    trunk = Trunk(
        name="opb",
        host="192.0.2.20",
        identify=("192.0.2.21", "198.51.100.0/24"),
        outbound_proxy="sip:sbc.example.fr:5070;lr",
        qualify=False,
        max_channels=12,
    )
    text = render_pjsip([trunk.validate()], qualify_frequency_s=7)
    assert "match = 192.0.2.20\nmatch = 192.0.2.21\nmatch = 198.51.100.0/24\n" in text
    # `;` would start a comment in Asterisk's config: escaped.
    assert text.count("outbound_proxy = sip:sbc.example.fr:5070\\;lr\n") == 2  # endpoint and aor
    assert "qualify_frequency = 0 " in text
    assert "device_state_busy_at = 12 " in text  # the dialplan refuses inbound calls beyond it
    pinged = render_pjsip([Trunk(name="opc", host="192.0.2.30")], qualify_frequency_s=7)
    assert "qualify_frequency = 7 " in pinged


def test_a_trunk_with_a_pai_number_leaves_identity_headers_to_the_engine() -> None:
    # The engine writes P-Asserted-Identity (the trunk's --pai) and Privacy itself: chan_pjsip would copy
    # the presented number (From) into PAI.
    assert "send_pai = no " in render_pjsip([Trunk(name="opa", host="192.0.2.10", pai_number="0162000000")])
    assert "send_pai = yes " in render_pjsip([Trunk(name="opb", host="192.0.2.11")])
