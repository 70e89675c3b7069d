"""The Asterisk ids of everything one call creates, derived from its attempt id (its channel id): a
restarted engine finds the call's playbacks, transfer leg and bridge from the attempt id and the call's
last stage snapshot alone (engine/domain/callstage.py)."""

from __future__ import annotations

import uuid
from typing import Final

# Fixed: ids derived under it must stay the same across releases.
_NAMESPACE: Final = uuid.UUID("1dd19d83-77e4-4ce5-9bfa-cb10e3482dac")


def playback_id(channel_id: str, machine_id: str) -> str:
    """Asterisk's id of the call flow's playback `machine_id` (such as p03-message) on that channel. The
    machine's ids have a fixed-width number followed by `-`, so no id is a prefix of another."""
    return f"{channel_id}-{machine_id}"


def machine_playback_id(channel_id: str, ari_id: str) -> str | None:
    """The call flow's id of an Asterisk playback of that channel (None: not one of the call's)."""
    prefix = f"{channel_id}-"
    return ari_id[len(prefix) :] if ari_id.startswith(prefix) else None


def transfer_leg_id(channel_id: str) -> str:
    """The channel id of the call's transfer leg (a call has at most one: no second `9` after a failed
    transfer). A UUID like the callee's, so that neither id is a prefix of the other."""
    return str(uuid.uuid5(_NAMESPACE, f"{channel_id}/transfer"))


def bridge_id(channel_id: str) -> str:
    """The id of the mixing bridge of the call's transfer."""
    return str(uuid.uuid5(_NAMESPACE, f"{channel_id}/bridge"))
