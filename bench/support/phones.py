"""The benches' SIPp phones: a signalling-only phone that answers at once (the dialer, ARI and carrier
benches), and a phone that answers and plays a recording (the AMD bench). Both wait for our BYE and log each
INVITE. And a carrier that refuses every call (the carrier bench).
"""

from __future__ import annotations

from pathlib import Path

from bench.support.instance import sipp_ports
from lab.sipp import SippProcess

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
"""
_RINGING = """  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
"""
_OK_WITH_SDP = """  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=bench 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=vocalcast bench phone
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16

    ]]>
  </send>
"""
_BYE = """  <recv request="BYE" timeout="600000" ontimeout="end"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""

# Answers at once (180 then 200, no pause: the answer delay is not what the dialer benches measure) and
# waits for our BYE. Its RTP port is bound by SIPp and ignored. [clock_tick] (ms, SIPp's clock) times
# each INVITE as it reached the phone.
SIGNALLING_ONLY = (
    _HEAD
    + """<scenario name="vocalcast bench phone">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:([^@;> ]*)" search_in="msg" check_it="false" assign_to="all,num"/>
      <log message="event=INVITE number=[$num] ruri=[$all] tick_ms=[clock_tick] call_id=[call_id]"/>
    </action>
  </recv>
"""
    + _RINGING
    + _OK_WITH_SDP
    + """  <recv request="ACK" crlf="true"/>
"""
    + _BYE
)

# Rings 100 ms, answers, plays [recording] from the ACK on (what a person or an answering machine says),
# and waits for our BYE. The INVITE's log line carries the RTP port Asterisk offered: the source port of
# what Asterisk sends to this call. (SIPp refuses a variable used only once: each is logged.)
PLAYS_RECORDING = (
    _HEAD
    + """<scenario name="vocalcast bench answering phone">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:([^@;> ]*)" search_in="msg" check_it="false" assign_to="all,num"/>
      <ereg regexp="m=audio ([0-9]+) " search_in="msg" check_it="true" assign_to="m,rtp_port"/>
      <log message="event=INVITE number=[$num] ruri=[$all] asterisk_rtp_port=[$rtp_port]"/>
      <log message="event=OFFER media=&quot;[$m]&quot;"/>
    </action>
  </recv>
"""
    + _RINGING
    + """  <pause milliseconds="100"/>
"""
    + _OK_WITH_SDP
    + """  <recv request="ACK" crlf="true">
    <action>
      <log message="event=ANSWER call_id=[call_id]"/>
    </action>
  </recv>
  <nop>
    <action>
      <exec play_pcap_audio="[recording]"/>
    </action>
  </nop>
"""
    + _BYE
)


# A carrier that takes no call: every INVITE answered 503 with a Retry-After of -key retry_after seconds
# (what tests/sipp/carrier_refuses.xml does), and logged with its Call-ID and SIPp's clock. OPTIONS are
# answered by -aa: the trunk stays reachable, only the refusals tell the engine to stay away.
REFUSES = (
    _HEAD
    + """<scenario name="vocalcast bench refusing carrier">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:([^@;> ]*)" search_in="msg" check_it="false" assign_to="all,num"/>
      <log message="event=INVITE number=[$num] ruri=[$all] tick_ms=[clock_tick] call_id=[call_id]"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 503 Service Unavailable
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Retry-After: [retry_after]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""
)


def _write(workdir: Path, name: str, scenario: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.xml"
    path.write_text(scenario)
    return path


def signalling_only(workdir: Path, index: int = 0, *, name: str = "bench-phone") -> SippProcess:
    """The signalling-only phone, not started (enter it with `async with`)."""
    sip, media = sipp_ports(index)
    return SippProcess(
        _write(workdir, "bench-phone", SIGNALLING_ONLY),
        local_port=sip,
        media_port=media,
        workdir=workdir,
        trace_messages=False,
        extra_args=["-aa"],  # answers the trunk's OPTIONS qualify
        name=name,
    )


def playing(workdir: Path, index: int, recording: Path, *, name: str) -> SippProcess:
    """A phone that answers and plays `recording` (a pcap of G.711 RTP), not started."""
    sip, media = sipp_ports(index)
    return SippProcess(
        _write(workdir, "bench-answering-phone", PLAYS_RECORDING),
        local_port=sip,
        media_port=media,
        workdir=workdir,
        keys={"recording": str(recording)},
        trace_messages=False,
        extra_args=["-aa"],
        name=name,
    )


def refusing(workdir: Path, index: int, *, retry_after_s: int, name: str) -> SippProcess:
    """A carrier answering every INVITE 503 with Retry-After: retry_after_s, not started."""
    sip, media = sipp_ports(index)
    return SippProcess(
        _write(workdir, "bench-refusing-carrier", REFUSES),
        local_port=sip,
        media_port=media,
        workdir=workdir,
        keys={"retry_after": str(retry_after_s)},
        trace_messages=False,
        extra_args=["-aa"],
        name=name,
    )


def asterisk_rtp_port(phone: SippProcess) -> int | None:
    """The RTP port Asterisk offered in its (first) INVITE to this phone, from the phone's log."""
    for event in phone.log_events():
        if event.get("event") == "INVITE" and event.get("asterisk_rtp_port", "").isdigit():
            return int(event["asterisk_rtp_port"])
    return None
