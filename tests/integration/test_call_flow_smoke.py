"""The call-flow adapter on a real call: greeting, `*`, the message to its end -> listened."""

from __future__ import annotations

import gc
import uuid
import weakref
from pathlib import Path

import pytest

from engine.domain.callplan import CallPlan
from engine.domain.outcomes import Outcome
from engine.domain.trunks import Trunk
from engine.media.paths import prompt_uri, sound_uri
from engine.settings import Settings
from engine.telephony.callrequest import CallerId, CallRequest
from engine.telephony.calls import CallService
from lab.dtmfpcap import write_rfc2833_pcap
from lab.sipp import SippProcess
from tests.integration.conftest import Ari, add_trunk, wait_for
from tests.integration.test_first_call import marker_prompt

pytestmark = pytest.mark.integration
SIPP_DIR = Path(__file__).parent.parent / "sipp"


async def test_greeting_star_message_listened(
    stack_settings: Settings, ari: Ari, sipp_ports, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sip_port, media_port = sipp_ports()
    pcap = tmp_path / "star.pcap"
    write_rfc2833_pcap(pcap, "*")
    await add_trunk(stack_settings, Trunk(name="callee", host="127.0.0.1", port=sip_port))
    service = CallService(ari.client, ari.router)
    plan = CallPlan(
        message=sound_uri(stack_settings, marker_prompt(stack_settings)),
        greeting=prompt_uri(stack_settings, "greeting_default"),
        star_wait_s=3,
    )
    request = CallRequest(
        attempt_id=str(uuid.uuid4()),
        endpoint="PJSIP/0612345678@callee",
        trunk="callee",
        plan=plan,
        caller_id=CallerId("0162000000", hidden=True),
        ring_timeout_s=10,
        callee_number="+33612345678",
    )
    sipp = SippProcess(
        SIPP_DIR / "callee_answer_dtmf.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        keys={"pcap": str(pcap)},
        recv_timeout_ms=30000,
    )
    async with sipp:
        call = await service.start(request)
        result = await call.done
    assert result.outcome is Outcome.listened, result
    assert result.greeting_plays == 1
    assert result.cause == 16
    # Its channel is gone: nothing keeps the call in memory any more (an engine places millions).
    freed = weakref.ref(call)
    del call
    await wait_for(
        lambda: gc.collect() >= 0 and freed() is None, timeout_s=3, what="the ended call to be freed"
    )
