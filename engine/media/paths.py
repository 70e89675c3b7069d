"""Where Asterisk finds this instance's files: the one place that turns a message, a prompt or the
recording spool into the path or sound URI Asterisk uses.

Asterisk sees this instance's directory (<state dir>/asterisk on the host) at /srv/<instance id>; the
media directory is mounted read-only below it (files transport), at /srv/<instance id>/media, and our
prompts are copied to /srv/<instance id>/sounds at each start. Whoever starts Asterisk (the local
stack, a container entrypoint) provides that view; the runtime only relies on it.

With VOCALCAST_MEDIA_TRANSPORT=http (issue 19) no media server sees the media directory: a file of it is
played from the engine's media listener by a signed URL naming the file's version (engine.media.signing,
engine.media.server); our prompts are still played from each media server's own copy.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from engine.errors import ConfigurationError
from engine.media import signing
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
    if settings.media_transport == "http" and stem.is_relative_to(settings.media_dir):
        return f"sound:{media_url(settings, stem)}"
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


# Served over HTTP: A-law first (France's codec, what trunks carry: no transcoding per call), else the WAV.
HTTP_SUFFIXES = (".alaw", ".wav")
_NO_VERSION = "0" * 16


def media_url(settings: Settings, stem: Path) -> str:
    """The signed URL of a file of the media dir (``stem`` without extension) at its current version. A
    missing file gets a URL that answers 404: its play fails, as a missing file's does in files mode."""
    key = signing.media_key(settings.require("secret_key"))
    rel_stem = stem.relative_to(settings.media_dir).as_posix()
    for suffix in HTTP_SUFFIXES:
        try:
            info = (settings.media_dir / (rel_stem + suffix)).stat()
        except OSError:
            continue
        return settings.media_base_url + signing.url_path(key, rel_stem + suffix, signing.file_version(info))
    return settings.media_base_url + signing.url_path(key, rel_stem + HTTP_SUFFIXES[-1], _NO_VERSION)


def media_server_aris(settings: Settings) -> dict[str, str]:
    """Each media server's name (its node name, in its AGI URL) and its Asterisk HTTP base URL (ARI is
    under /ari): VOCALCAST_MEDIA_SERVERS, else this node's Asterisk."""
    servers = settings.media_server_urls
    return servers or {settings.node_name: f"http://127.0.0.1:{settings.ari_port}"}
