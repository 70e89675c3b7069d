"""The nodes of the cluster as an operator sees them (`vocalcast node list`, `stack status`; issue 19)."""

from __future__ import annotations

from engine.settings import Settings
from engine.store import Database
from engine.store import nodes as nodes_store


async def nodes_report(settings: Settings) -> list[dict[str, object]]:
    """Every node with its state (active, draining, silent, taken over): `node list`, `stack status`."""
    async with Database(settings.dsn, min_size=1, max_size=1, timeout_s=2.0) as db:
        rows = await nodes_store.list_nodes(db)
    out: list[dict[str, object]] = []
    for row in rows:
        if row.taken_over_by:
            state = "dead"
        elif row.silent_s > settings.node_dead_after_s:
            state = "silent"
        else:
            state = "draining" if row.draining else "active"
        out.append(
            {
                "name": row.name,
                "state": state,
                "epoch": row.epoch,
                "app": row.app,
                "silent_s": round(row.silent_s, 1),
                "draining": row.draining,
                "taken_over_by": row.taken_over_by,
                "open_attempts": row.open_attempts,
            }
        )
    return out


async def set_draining(settings: Settings, name: str, draining: bool) -> bool:
    """Start or end node ``name``'s drain (`vocalcast node drain|resume`); False: no such node ran."""
    async with Database(settings.dsn, min_size=1, max_size=1, timeout_s=5.0) as db:
        return await nodes_store.set_draining(db, name, draining)
