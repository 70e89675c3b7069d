"""Where Asterisk finds this instance's files: the one place that turns a message, a prompt or the
recording spool into the path or sound URI Asterisk uses.

Asterisk sees this instance's directory (<state dir>/asterisk on the host) at /srv/<instance id>; the
media directory is mounted read-only below it, at /srv/<instance id>/media, and our prompts are copied
to /srv/<instance id>/sounds at each start. Whoever starts Asterisk (the local stack, a container
entrypoint) provides that view; the runtime only relies on it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from engine.errors import ConfigurationError
from engine.settings import Settings

AUDIO_SUFFIXES = frozenset({".wav", ".alaw", ".ulaw", ".sln"})


def instance_dir(settings: Settings) -> PurePosixPath:
    """This instance's directory as Asterisk sees it."""
    return PurePosixPath("/srv") / settings.instance_id


def host_dir(settings: Settings) -> Path:
    """This instance's Asterisk directory on the host."""
    return settings.state_dir / "asterisk"


def sound_uri(settings: Settings, path: Path) -> str:
    """The sound URI Asterisk plays for a file of ours (no extension: Asterisk picks the file matching
    the channel's codec among .alaw/.ulaw/.wav)."""
    stem = path.with_suffix("") if path.suffix in AUDIO_SUFFIXES else path
    for base, inside in ((settings.media_dir, "media"), (host_dir(settings) / "sounds", "sounds")):
        try:
            rel = stem.relative_to(base)
        except ValueError:
            continue
        return f"sound:{instance_dir(settings) / inside / rel.as_posix()}"
    raise ConfigurationError(f"{path} is neither under the media dir nor a prompt: Asterisk cannot read it")


def prompt_uri(settings: Settings, name: str) -> str:
    """One of our prompts (sounds/fr), by name."""
    return f"sound:{prompts_dir(settings) / name}"


def prompts_dir(settings: Settings) -> PurePosixPath:
    return instance_dir(settings) / "sounds"


def recording_spool(settings: Settings) -> tuple[PurePosixPath, Path]:
    """Asterisk's recording spool of this instance: (as Asterisk sees it, on the host)."""
    return instance_dir(settings) / "spool" / "recording", host_dir(settings) / "spool" / "recording"
