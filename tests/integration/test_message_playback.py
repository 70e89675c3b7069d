"""An uploaded message, converted by the library, is what a callee hears: the RTP captured towards a
SIPp phone, decoded, holds the message's marker tone for the message's duration (±5 %)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account
from lab import tones
from tests.integration.conftest import Ari
from tests.support.playback import MARKER_HZ, heard_by_a_phone, marker_mp3

pytestmark = pytest.mark.integration


async def test_uploaded_mp3_reaches_the_callee(
    stack_settings: Settings,
    db: Database,
    ari: Ari,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    mp3 = marker_mp3(tmp_path / "annonce.mp3", tone_s=2.5, lead_s=0.8, pad_s=1.0)
    account = (
        await create_account(db, "ecoute@example.fr", secret_key=stack_settings.require("secret_key"))
    ).account
    message = await Messages(db, stack_settings).add(
        account.id, mp3, origin="file", original_name="annonce.mp3"
    )
    # Trimming kept the tone and a short pad of silence on each side.
    assert 2.5 <= message.duration_s <= 3.0

    heard = await heard_by_a_phone(
        stack_settings, ari.client, ari.router, sipp_ports, tmp_path, message, trunk="listener"
    )
    duration = tones.tone_duration_s(heard, MARKER_HZ)
    assert 2.5 * 0.95 <= duration <= 2.5 * 1.05, duration
    # The whole message (tone and its trimmed pad) went out, and nothing else.
    audio_s = len(heard) / 8000
    assert message.duration_s * 0.95 <= audio_s <= message.duration_s * 1.05 + 0.2, (
        audio_s,
        message.duration_s,
    )
