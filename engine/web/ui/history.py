"""« Historique »: every send of the account, one send's per-recipient outcomes and chart, the CSV of
its results, pause / resume / cancel, and the small JSON the pages poll for live progress."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from aiohttp import web

from engine.domain.outcomes import OUTCOMES, Outcome, TransferOutcome
from engine.domain.sends import (
    LABELS_FR,
    TRANSITIONS,
    UNFINISHED,
    Send,
    SendStatus,
    recipient_note_fr,
    window_wait,
    window_wait_fr,
)
from engine.errors import InvalidInput, NotFound
from engine.web.ui.core import SECURITY_HEADERS, Page, datetime_fr, page, phone_fr

SENDS_PER_PAGE: Final = 50
RECIPIENTS_PER_PAGE: Final = 100
CSV_BATCH: Final = 1000
ACTIONS_FR: Final = {"pause": "Mettre en pause", "resume": "Reprendre", "cancel": "Annuler l'envoi"}
STATE_FR: Final = {"pending": "En attente", "calling": "Appel en cours", "cancelled": "Non appelé (annulé)"}
# Chart colours by what the outcome means; all of them keep a 3:1 contrast on white (WCAG non-text).
_SUCCESS, _PARTIAL, _FAILURE = "#1b6e3a", "#9a5b00", "#5c6670"


def _send_id(p: Page) -> UUID:
    try:
        return UUID(p.request.match_info["send_id"])
    except ValueError as exc:
        raise NotFound("not a send id") from exc


async def _send(p: Page) -> Send:
    """The send of the URL; another account's is NotFound."""
    return await p.services.sends.get(_send_id(p), account_id=p.account.id)


@page
async def history(p: Page) -> web.StreamResponse:
    before: datetime | None = None
    if p.text("avant"):
        try:
            before = datetime.fromisoformat(p.text("avant"))
        except ValueError:
            before = None
    sends = await p.services.sends.history(p.account.id, limit=SENDS_PER_PAGE + 1, before=before)
    more = len(sends) > SENDS_PER_PAGE
    sends = sends[:SENDS_PER_PAGE]
    messages = {m.id: m for m in await p.services.messages.list(p.account.id)}
    counters = {c.id: c for c in await p.services.sends.counters(p.account.id, [s.id for s in sends])}
    return p.render(
        "history.html",
        sends=sends,
        messages=messages,
        counters=counters,
        next_before=sends[-1].created_at.isoformat() if more and sends else "",
    )


def _chart(outcomes: dict[str, int]) -> list[dict[str, Any]]:
    """Bars of the chart, in the outcome table's order, only outcomes that happened."""
    bars = []
    top = max(outcomes.values(), default=0)
    for outcome, rule in OUTCOMES.items():
        count = outcomes.get(outcome.value, 0)
        if not count:
            continue
        colour = _SUCCESS if rule.success else (_PARTIAL if rule.answered else _FAILURE)
        bars.append(
            {"code": outcome.value, "label": rule.label_fr, "count": count, "colour": colour,
             "width": max(2, round(360 * count / top)) if top else 0}
        )  # fmt: skip
    return bars


def _transfer_minutes(attempts: list[dict[str, Any]]) -> int:
    """Started minutes of the recipient's transferred conversations (as the send's total counts them)."""
    return sum(math.ceil(a["transfer_s"] / 60) for a in attempts if (a.get("transfer_s") or 0) > 0)


def _recipient_row(row: dict[str, Any]) -> dict[str, Any]:
    attempts = row["attempts_detail"]
    if isinstance(attempts, str):
        attempts = json.loads(attempts)
    last = attempts[-1] if attempts else {}
    transfer = last.get("transfer_outcome")
    return {
        # Invoicing (issue 17): the transfers' started minutes and the credits they were charged.
        "transfer_min": _transfer_minutes(attempts),
        "transfer_credits": sum(a.get("transfer_credits") or 0 for a in attempts),
        "id": row["id"],
        "number": phone_fr(row["e164"]),
        "result": Outcome(row["outcome"]).label_fr
        if row["outcome"]
        else STATE_FR.get(row["state"], row["state"]),
        "attempts": row["attempts"],
        "final_at": datetime_fr(row["final_at"]),
        "talk_s": last.get("talk_s"),
        "transfer": TransferOutcome(transfer).label_fr if transfer else "",
        # Which line carried the last call: the demo phone, or a real carrier (say it when it was real).
        "line": ("téléphone de test" if last.get("demo") else f"réelle ({last.get('trunk')})")
        if last
        else "",
        "note": recipient_note_fr(
            state=row["state"],
            outcome=row["outcome"],
            attempts=row["attempts"],
            wait_reason=row["wait_reason"],
            next_attempt_at=row["next_attempt_at"],
            last_outcome=last.get("outcome"),
            now=datetime.now(UTC),
        ),
    }


@page
async def detail(p: Page) -> web.StreamResponse:
    send = await _send(p)
    progress = await p.services.sends.progress(send)
    transfers = await p.services.sends.transfer_usage(send)
    after = int(p.text("apres")) if p.text("apres").isdigit() else 0
    rows = await p.services.sends.recipients(send, limit=RECIPIENTS_PER_PAGE + 1, after_id=after)
    more = len(rows) > RECIPIENTS_PER_PAGE
    rows = rows[:RECIPIENTS_PER_PAGE]
    try:
        message = await p.services.messages.get_by_id(p.account.id, send.message_id)
        message_label = f"n° {message.ref} — {message.title}"
    except NotFound:
        message_label = "(message supprimé)"
    actions = [(a, ACTIONS_FR[a]) for a, (allowed, _) in TRANSITIONS.items() if send.status in allowed]
    now = datetime.now(UTC)
    wait = window_wait(send.purpose, send.status, progress.pending, now)
    return p.render(
        "send_detail.html",
        window_note=None if wait is None else window_wait_fr(wait, now),
        send=send,
        progress=progress,
        transfers=transfers,
        percent=_percent(send.status, progress.total - progress.remaining, progress.total),
        message_label=message_label,
        bars=_chart(progress.outcomes),
        rows=[_recipient_row(dict(r)) for r in rows],
        next_after=rows[-1]["id"] if more and rows else 0,
        actions=actions,
        live=send.status in UNFINISHED,
    )


def _percent(status: SendStatus, done: int, total: int) -> int:
    return 100 if status is SendStatus.completed else (100 * done) // max(total, 1)


@page
async def progress_json(p: Page) -> web.StreamResponse:
    send = await _send(p)
    progress = await p.services.sends.progress(send)
    done = progress.total - progress.remaining
    body = {
        "id": str(send.id),
        "status": send.status.value,
        "status_label": LABELS_FR[send.status],
        "total": progress.total,
        "done": done,
        "calling": progress.calling,
        "percent": _percent(send.status, done, progress.total),
        "outcomes": [
            {"code": b["code"], "label": b["label"], "count": b["count"]} for b in _chart(progress.outcomes)
        ],
        "live": send.status in UNFINISHED,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@page
async def counters_json(p: Page) -> web.StreamResponse:
    """Progress of several sends at once (the dashboard), one query; ids of other accounts are ignored."""
    ids = []
    for raw in p.text("ids").split(",")[:50]:
        try:
            ids.append(UUID(raw))
        except ValueError:
            continue
    found = await p.services.sends.counters(p.account.id, ids)
    body = [
        {
            "id": str(c.id),
            "status": c.status.value,
            "status_label": LABELS_FR[c.status],
            "total": c.total,
            "done": c.done,
            "percent": c.percent,
            "live": c.status in UNFINISHED,
        }
        for c in found
    ]
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@page
async def act(p: Page) -> web.StreamResponse:
    send_id = _send_id(p)
    action = p.text("action")
    if action not in TRANSITIONS:
        raise NotFound(f"no action {action!r}")
    try:
        send = await p.services.sends.steer(send_id, action, account_id=p.account.id)
    except InvalidInput as exc:
        return p.redirect(f"/historique/{send_id}", exc.message_fr)
    done = {"pause": "Envoi mis en pause.", "resume": "Envoi repris.", "cancel": "Envoi annulé."}[action]
    return p.redirect(f"/historique/{send.id}", done)


# What a spreadsheet reads as the start of a formula (OWASP's list): such a cell gets a leading apostrophe,
# so Excel or LibreOffice shows the text instead of running it. Our own numbers (+ and digits) are data.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_E164: Final = re.compile(r"\+[0-9]{1,15}")


def csv_cell(value: object) -> str:
    """A value as a CSV cell that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS) and not _E164.fullmatch(text):
        return "'" + text
    return text


@page
async def export_csv(p: Page) -> web.StreamResponse:
    """Every recipient's result, for Excel: semicolons, UTF-8 with a BOM, French headings."""
    send = await _send(p)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="envoi-{str(send.id)[:8]}-resultats.csv"',
            **{k: v for k, v in SECURITY_HEADERS.items() if k != "Content-Security-Policy"},
        }
    )
    await response.prepare(p.request)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(
        [
            "Numéro", "Résultat", "Code résultat", "Essais", "Fin", "Écoute (s)", "Transfert",
            "Minutes de transfert", "Crédits de transfert", "Référence",
        ]
    )  # fmt: skip
    after = 0
    while True:
        rows = await p.services.sends.recipients(send, limit=CSV_BATCH, after_id=after)
        for raw in rows:
            row = _recipient_row(dict(raw))
            cells = [
                row["number"],
                row["result"],
                raw["outcome"] or raw["state"],
                row["attempts"],
                row["final_at"],
                "" if row["talk_s"] is None else f"{row['talk_s']:.1f}".replace(".", ","),
                row["transfer"],
                row["transfer_min"],
                row["transfer_credits"],
                send.comment,
            ]
            writer.writerow([csv_cell(c) for c in cells])
        await response.write(out.getvalue().encode())
        out.seek(0)
        out.truncate()
        if len(rows) < CSV_BATCH:
            break
        after = rows[-1]["id"]
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/historique", history)
    app.router.add_get("/historique/progression.json", counters_json)
    app.router.add_get("/historique/{send_id}", detail)
    app.router.add_get("/historique/{send_id}/progression.json", progress_json)
    app.router.add_get("/historique/{send_id}/resultats.csv", export_csv)
    app.router.add_post("/historique/{send_id}/action", act)
