"""Signed media URLs (issue 19): media servers fetch a message's audio from the engine's media listener
over HTTP, by a URL nobody can guess or forge.

A URL names one *version* of one file: ``/m/<version>/<signature>/<path under the media dir>``. The version
is drawn from the file's identity (inode, size, modification time), so a file replaced under the same name
gets a new URL: Asterisk's media cache, keyed by the full URL and never evicted, can never serve the old
audio for it. The signature is an HMAC of path and version with a key derived from the server secret.
Pure functions: the listener (engine.media.server) and sound_uri (engine.media.paths) use them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import PurePosixPath
from typing import Final

PREFIX: Final = "/m"
# Extensions Asterisk plays from a URL (the format is taken from it) and their Content-Type.
CONTENT_TYPES: Final = {
    ".alaw": "audio/x-alaw-basic",
    ".ulaw": "audio/basic",
    ".wav": "audio/x-wav",
}
_LABEL: Final = b"vocalcast media url v1"
_SIGNATURE_HEX: Final = 32
_VERSION_RE: Final = re.compile(r"[0-9a-f]{16}")
_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def media_key(secret_key: str) -> bytes:
    """The URL-signing key: derived from the server secret, never the secret itself."""
    if not secret_key:
        raise ValueError("an empty server secret cannot sign media URLs")
    return hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).digest()


def file_version(info: os.stat_result) -> str:
    """One file's version: changes when the file is replaced or rewritten."""
    identity = f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}".encode()
    return hashlib.sha256(identity).hexdigest()[:16]


def signature(key: bytes, rel: str, version: str) -> str:
    return hmac.new(key, f"{version}\n{rel}".encode(), hashlib.sha256).hexdigest()[:_SIGNATURE_HEX]


def safe_rel(rel: str) -> PurePosixPath | None:
    """``rel`` as a path under the media dir, or None: no absolute path, no ``..``, no hidden or odd
    names, one of the playable extensions."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or not all(_SEGMENT_RE.fullmatch(p) for p in path.parts):
        return None
    if ".." in path.parts or path.suffix not in CONTENT_TYPES:
        return None
    return path


def url_path(key: bytes, rel: str, version: str) -> str:
    """The signed path of version ``version`` of ``rel`` (relative to the media dir)."""
    if safe_rel(rel) is None or not _VERSION_RE.fullmatch(version):
        raise ValueError(f"not a media file path: {rel!r}")
    return f"{PREFIX}/{version}/{signature(key, rel, version)}/{rel}"


def verify(key: bytes, rel: str, version: str, given: str) -> bool:
    """Whether ``given`` is the signature of ``rel`` at ``version`` (constant time)."""
    if not _VERSION_RE.fullmatch(version) or len(given) != _SIGNATURE_HEX:
        return False
    return hmac.compare_digest(signature(key, rel, version), given)
