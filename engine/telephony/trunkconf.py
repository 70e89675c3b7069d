"""The trunks as Asterisk runs them: their PJSIP configuration written into this instance's Asterisk
directory, reloaded live, and checked — a trunk Asterisk did not load takes no call.

One rendering for everybody: the engine, `vocalcast trunk add|remove` and `stack up` write the same file
from the same trunk rows and the instance's own settings (its mode: the demo trunk exists only in demo mode).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from engine.domain.trunks import Trunk, usable_trunks
from engine.media.paths import host_dir
from engine.settings import Settings
from engine.telephony.ari import AriClient, AriNotFound
from engine.telephony.trunks import render_pjsip

TRUNKS_FILE = "pjsip_trunks.conf"


def render(settings: Settings, trunks: Iterable[Trunk]) -> str:
    return render_pjsip(
        usable_trunks(trunks, demo=settings.demo),
        qualify_frequency_s=settings.qualify_frequency_s,
        edge=settings.sip_edge,
    )


def write(settings: Settings, trunks: Iterable[Trunk]) -> Path:
    """Write the trunks' PJSIP configuration (root and the asterisk group may read it: passwords inside)."""
    path = host_dir(settings) / "etc" / TRUNKS_FILE
    write_config(path, render(settings, trunks), settings.asterisk_uid)
    return path


def write_config(path: Path, text: str, gid: int) -> None:
    """Replace an Asterisk config file at once: 0640, the asterisk group. Written by root (`stack up`,
    `vocalcast trunk add`) or by the engine as the service user, a member of that group, in a directory
    the service user owns (issue 17): the temporary file is a new one of a random name (never an existing
    file or a symbolic link someone placed there), and the rename replaces the name, not what it points to."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            os.fchown(f.fileno(), -1, gid)
            os.fchmod(f.fileno(), 0o640)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def reload(ari: AriClient) -> None:
    """Reload PJSIP live (calls in progress go on)."""
    await ari.reload_module("res_pjsip.so")


async def loaded(ari: AriClient, name: str) -> bool:
    """Has Asterisk loaded trunk ``name``? (ARI keeps listing a removed endpoint, as offline: its
    configuration object is what tells.)"""
    try:
        await ari.request("GET", f"/asterisk/config/dynamic/res_pjsip/endpoint/{name}")
    except AriNotFound:
        return False
    return True


async def reload_over_ari(settings: Settings, trunks: Iterable[Trunk]) -> list[str]:
    """Reload PJSIP through ``settings``' own Asterisk (its ARI) and name those of ``trunks`` it loaded.
    Raises AriUnavailable when that Asterisk does not answer (not running, or still booting)."""
    async with AriClient(
        host="127.0.0.1",
        port=settings.ari_port,
        user=settings.ari_user,
        password=settings.require("ari_password"),
        app=settings.app_name + "-trunks-cli",
    ) as ari:
        await reload(ari)
        return [t.name for t in trunks if await loaded(ari, t.name)]
