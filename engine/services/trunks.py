"""Trunks: the operator's SIP trunks as data — saved, removed, applied to Asterisk and checked — and what
every node sees of their health.

Applying writes the PJSIP configuration from the trunk rows and this instance's own settings (its mode:
the demo trunk exists only in demo mode; a command run from a plain shell reads the running stack's
settings, engine.settings), reloads PJSIP live, and reads back which trunks Asterisk really loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.domain.trunks import Trunk, usable_trunks
from engine.errors import TelephonyUnavailable
from engine.settings import Settings
from engine.store import trunks as store
from engine.store.db import Database
from engine.store.trunks import TrunkHealth
from engine.telephony import edge, trunkconf
from engine.telephony.ari import AriError, AriUnavailable


@dataclass(frozen=True)
class Applied:
    """What Asterisk did with the trunks: reloaded or not (not running), and which usable trunks it
    loaded or refused."""

    reloaded: bool
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Trunks:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._real: tuple[float, tuple[str, ...]] = (float("-inf"), ())

    async def real_in_demo(self, max_age_s: float = 10.0) -> tuple[str, ...]:
        """In demo mode, the usable trunks that call real numbers (read again at most every max_age_s:
        every page shows them)."""
        at, names = self._real
        if time.monotonic() - at > max_age_s:
            trunks = usable_trunks(await store.list_trunks(self._db), demo=self._settings.demo)
            names = tuple(t.name for t in trunks if not t.demo) if self._settings.demo else ()
            self._real = (time.monotonic(), names)
        return names

    async def all(self) -> list[Trunk]:
        return await store.list_trunks(self._db)

    async def health(self) -> list[TrunkHealth]:
        return await store.health(self._db)

    async def save(self, trunk: Trunk) -> Applied:
        """Add or update a trunk (InvalidInput naming the first bad field), then apply every trunk."""
        await store.upsert_trunk(self._db, trunk.validate())
        return await self.apply()

    async def remove(self, name: str) -> Applied:
        """Remove a trunk (NotFound when there is none): its calls in progress go on; sends running while
        no trunk is left are paused by the dialer until one is back, nobody's attempt is used."""
        await store.remove_trunk(self._db, name)
        return await self.apply()

    async def apply(self) -> Applied:
        settings = self._settings
        trunks = await store.list_trunks(self._db)
        # A local cluster (issue 19): Kamailio's dispatcher list and every media server, not one Asterisk.
        topology = edge.read_topology(settings)
        if topology is None:
            trunkconf.write(settings, trunks)
        usable = usable_trunks(trunks, demo=settings.demo)
        warnings = []
        if settings.demo and any(not t.demo for t in usable):
            real = ", ".join(t.name for t in usable if not t.demo)
            warnings.append(
                f"demo mode: calls through {real} reach real numbers (the pages and every attempt say so)"
            )
        if topology is not None:
            done = await edge.apply_trunks(settings, topology, trunks)
            warnings += [
                f"media server {name} is not running: it loads the trunks when it starts"
                for name in done.unreachable
            ]
            if done.edge_down:
                warnings.append("Kamailio is not running: it loads the trunks when it starts")
            return Applied(
                reloaded=bool(done.loaded),
                loaded=[t.name for t in usable if all(t.name in names for names in done.loaded.values())],
                missing=sorted({name for names in done.missing.values() for name in names}),
                warnings=warnings,
            )
        try:
            loaded = await trunkconf.reload_over_ari(settings, usable)
        except AriUnavailable:
            return Applied(reloaded=False, warnings=warnings)
        except AriError as exc:
            raise TelephonyUnavailable(f"trunks saved, but Asterisk did not reload them: {exc}") from exc
        missing = [t.name for t in usable if t.name not in loaded]
        return Applied(reloaded=True, loaded=loaded, missing=missing, warnings=warnings)
