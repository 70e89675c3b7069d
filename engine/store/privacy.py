"""Personal data in the store (issue 20, RGPD): what an account's or a number's export reads (streamed:
COPY and server-side cursors), erasing an account (its ledger kept, without numbers), erasing one number
in an account or everywhere (stop lists keep its hash), and the retention purge.

A pseudonymised number is '#' and the HMAC-SHA256 of its E.164 form under the server secret, in
lower-case hex (``pseudonym``; in SQL, pgcrypto's ``hmac``, sql/0018_privacy.sql).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from engine.domain.stoplists import keyed_hash, number_hash
from engine.errors import InvalidInput
from engine.store.db import rows_affected

# Number-like runs in free text (CDR channel strings, the ledger's reasons): 6 digits or more.
_DIGIT_RUN: Final = r"\+?[0-9]{6,}"
# A pseudonym in SQL, of the text expression {x}; $KEY is the parameter holding the server secret.
_PSEUDONYM_SQL: Final = "'#' || encode(hmac({x}, {key}, 'sha256'), 'hex')"


def pseudonym(e164: str, key: str) -> str:
    """The keyed hash that replaces a number: what the SQL above computes."""
    return "#" + hmac.new(key.encode(), e164.encode(), hashlib.sha256).hexdigest()


def _pseudonym_sql(x: str, key: str) -> str:
    return _PSEUDONYM_SQL.format(x=x, key=key)


def _cdr_cleared(pattern: str) -> str:
    """The SET list that clears number-like runs (matching the parameter ``pattern``) from a CDR."""
    columns = ("clid", "src", "channel", "dstchannel", "lastdata")
    return ", ".join(f"{c} = regexp_replace({c}, {pattern}, '#', 'g')" for c in columns)


def spellings(e164: str) -> list[str]:
    """Every spelling of a number we may hold in free text: E.164, without its '+', with 00, and the
    French national form for +33 numbers."""
    out = [e164, e164[1:], "00" + e164[1:]]
    if e164.startswith("+33"):
        out.append("0" + e164[3:])
    return out


# --- export ----------------------------------------------------------------------------------------------

# One file pair (CSV + JSON) per entry; $1 is the account. Column lists are constants: no secret
# (password hash, personal-code digest, token digests, webhook secret) ever leaves.
ACCOUNT_EXPORT: Final[Mapping[str, str]] = {
    "profil": (
        "SELECT id, email, created_at, balance, reserved, allow_international, allow_voicemail_drop, "
        "default_purpose, default_greeting_enabled, default_greeting_message_id, default_transfer_number, "
        "default_sender_number_id, default_retries, default_retry_interval_s, default_voicemail_drop "
        "FROM accounts WHERE id = $1"
    ),
    "numeros_emetteurs": (
        "SELECT id, e164, status, is_mobile, declared_at, verified_at FROM sender_numbers "
        "WHERE account_id = $1 ORDER BY id"
    ),
    "contacts": (
        "SELECT id, societe, nom, prenom, e164, number_type, is_mobile, consent_at, consent_source, "
        "consent_proof, consent_withdrawn_at, created_at, updated_at FROM contacts "
        "WHERE account_id = $1 ORDER BY id"
    ),
    "groupes": "SELECT id, name, created_at FROM contact_groups WHERE account_id = $1 ORDER BY id",
    "membres_groupes": (
        "SELECT group_id, contact_id FROM group_members WHERE account_id = $1 ORDER BY group_id, contact_id"
    ),
    "envois": (
        "SELECT id, message_id, greeting_message_id, transfer_number, sender_e164, comment, origin, status, "
        "purpose, start_at, deferred, extra_attempts, retry_interval_s, voicemail_drop, demo, "
        "recipients_total, credits_held, credits_used, stop_listed_skipped, created_at, started_at, ended_at "
        "FROM sends WHERE account_id = $1 ORDER BY created_at, id"
    ),
    "destinataires": (
        "SELECT r.id, r.send_id, r.e164, r.is_mobile, r.contact_id, r.state, r.attempts, r.outcome, "
        "r.final_at, r.wait_reason FROM send_recipients r JOIN sends s ON s.id = r.send_id "
        "WHERE s.account_id = $1 ORDER BY r.id"
    ),
    "appels": (
        "SELECT a.id, a.send_id, a.recipient_id, r.e164, a.attempt_no, a.trunk, a.state, a.created_at, "
        "a.answered_at, a.ended_at, a.outcome, a.end_reason, a.cause, a.sip_code, a.ring_s, a.talk_s, "
        "a.transfer_outcome, a.transfer_s, a.demo FROM attempts a JOIN sends s ON s.id = a.send_id "
        "JOIN send_recipients r ON r.id = a.recipient_id WHERE s.account_id = $1 ORDER BY a.created_at, a.id"
    ),
    "credits": (
        "SELECT id, at, kind, amount, held, reason, send_id FROM credit_ledger WHERE account_id = $1 "
        "ORDER BY id"
    ),
    "messages": (
        "SELECT id, ref, title, origin, is_greeting, duration_s, original_name, created_at, deleted_at "
        "FROM messages WHERE account_id = $1 ORDER BY ref"
    ),
    "liste_opposition": (
        "SELECT number_hash, e164, added_at, source FROM account_stop_list WHERE account_id = $1 "
        "ORDER BY added_at, number_hash"
    ),
    "jetons_api": (
        "SELECT id, label, created_at, last_used_at, revoked_at FROM api_tokens WHERE account_id = $1 "
        "ORDER BY id"
    ),
    "webhooks": (
        "SELECT url, events, disabled_at, disabled_reason, updated_at FROM webhook_settings "
        "WHERE account_id = $1"
    ),
    "webhooks_evenements": (
        "SELECT id, send_id, type, sequence, occurred_at, url, status, tries, object FROM webhook_events "
        "WHERE account_id = $1 ORDER BY occurred_at, id"
    ),
    "requetes_refusees": (
        "SELECT at, origin, code, client, detail FROM refused_requests WHERE account_id = $1 ORDER BY id"
    ),
}

# Everything about one number: $1 the account (NULL: every account), $2 its E.164 form, $3 its stop-list
# hashes (plain SHA-256, and keyed: engine/domain/stoplists.lookup_hashes), $4 its spellings (free text:
# CDRs, webhook events). Every query declares the four (the WITH clause): one argument list serves all.
_NUMBER_PARAMS: Final = "WITH p AS (SELECT $1::uuid, $2::text, $3::text[], $4::text[]) "
_NUMBER_QUERIES: Final[Mapping[str, str]] = {
    "contacts": (
        "SELECT account_id, id, societe, nom, prenom, e164, number_type, is_mobile, consent_at, "
        "consent_source, consent_proof, consent_withdrawn_at, created_at, updated_at FROM contacts "
        "WHERE e164 = $2 AND ($1::uuid IS NULL OR account_id = $1) ORDER BY account_id, id"
    ),
    "destinataires": (
        "SELECT s.account_id, r.id, r.send_id, r.e164, r.state, r.attempts, r.outcome, r.final_at, "
        "s.created_at AS send_created_at, s.purpose FROM send_recipients r JOIN sends s ON s.id = r.send_id "
        "WHERE r.e164 = $2 AND ($1::uuid IS NULL OR s.account_id = $1) ORDER BY r.id"
    ),
    "appels": (
        "SELECT s.account_id, a.id, a.send_id, a.recipient_id, a.attempt_no, a.trunk, a.created_at, "
        "a.answered_at, a.ended_at, a.outcome, a.cause, a.sip_code, a.ring_s, a.talk_s, a.transfer_outcome "
        "FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id JOIN sends s ON s.id = a.send_id "
        "WHERE r.e164 = $2 AND ($1::uuid IS NULL OR s.account_id = $1) ORDER BY a.created_at, a.id"
    ),
    "cdr": (
        'SELECT c.start, c.answer, c."end", c.clid, c.src, c.dst, c.disposition, c.duration, c.billsec, '
        "c.uniqueid FROM asterisk_cdr c WHERE (c.uniqueid IN (SELECT a.id::text FROM attempts a "
        "JOIN send_recipients r ON r.id = a.recipient_id JOIN sends s ON s.id = a.send_id "
        "WHERE r.e164 = $2 AND ($1::uuid IS NULL OR s.account_id = $1))) "
        "OR ($1::uuid IS NULL AND c.dst = ANY ($4::text[])) ORDER BY c.id"
    ),
    "liste_opposition": (
        "SELECT account_id, number_hash, e164, added_at, source FROM account_stop_list "
        "WHERE number_hash = ANY($3::text[]) AND ($1::uuid IS NULL OR account_id = $1) ORDER BY account_id"
    ),
    "liste_opposition_operateur": (
        "SELECT number_hash, e164, added_at, source FROM operator_stop_list "
        "WHERE $1::uuid IS NULL AND number_hash = ANY($3::text[])"
    ),
    "webhooks_evenements": (
        "SELECT account_id, id, send_id, type, occurred_at, status, object FROM webhook_events "
        "WHERE ($1::uuid IS NULL OR account_id = $1) "
        "AND object::text LIKE ANY (SELECT '%' || s || '%' FROM unnest($4::text[]) s) ORDER BY occurred_at"
    ),
    "numeros_emetteurs": (
        "SELECT account_id, e164, status, declared_at FROM sender_numbers "
        "WHERE e164 = $2 AND ($1::uuid IS NULL OR account_id = $1)"
    ),
    "envois_transfert_ou_emetteur": (
        "SELECT account_id, id, transfer_number, sender_e164, created_at FROM sends "
        "WHERE $2 IN (transfer_number, sender_e164) AND ($1::uuid IS NULL OR account_id = $1)"
    ),
}
NUMBER_EXPORT: Final[Mapping[str, str]] = {k: _NUMBER_PARAMS + q for k, q in _NUMBER_QUERIES.items()}


async def copy_csv(
    conn: asyncpg.Connection, query: str, args: tuple[object, ...], sink: Callable[[bytes], Awaitable[None]]
) -> int:
    """One export query as CSV with a header, streamed by COPY into ``sink``; returns its row count."""
    status = await conn.copy_from_query(query, *args, output=sink, format="csv", header=True)
    return rows_affected(status)


async def json_rows(
    conn: asyncpg.Connection, query: str, args: tuple[object, ...], *, prefetch: int = 2000
) -> AsyncIterator[str]:
    """One export query's rows as JSON objects (text), through a server-side cursor (the caller holds
    the transaction)."""
    wrapped = f"SELECT row_to_json(q)::text FROM ({query}) q"  # noqa: S608 - constant export queries
    async for row in conn.cursor(wrapped, *args, prefetch=prefetch):
        yield row[0]


async def account_files(conn: asyncpg.Connection, account_id: UUID) -> list[asyncpg.Record]:
    """The account's live messages and their files (relative to the media directory)."""
    return list(
        await conn.fetch(
            "SELECT ref, audio_stem, original_file, original_name FROM messages "
            "WHERE account_id = $1 AND deleted_at IS NULL ORDER BY ref",
            account_id,
        )
    )


# --- erasing an account ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What a deleted account's row keeps in place of its credentials: unusable, random values."""

    password_hash: str
    code_digest: str


async def erase_account(conn: asyncpg.Connection, account_id: UUID, tombstone: Tombstone) -> dict[str, int]:
    """Erase an account's personal data in the caller's transaction; its row and its ledger stay (the
    ledger's reasons without numbers). Refused while one of its sends is unfinished (cancel it first).
    Returns the rows removed or changed, per table."""
    row = await conn.fetchrow("SELECT email, deleted_at FROM accounts WHERE id = $1 FOR UPDATE", account_id)
    if row is None:
        raise InvalidInput("account_not_found", f"no account {account_id}")
    unfinished = await conn.fetchval(
        "SELECT count(*) FROM sends WHERE account_id = $1 AND status IN ('scheduled', 'running', 'paused')",
        account_id,
    )
    if unfinished:
        raise InvalidInput(
            "account_has_unfinished_sends",
            f"account {account_id} has {unfinished} unfinished send(s)",
            message_fr="Des envois sont en cours ou programmés : annulez-les avant de supprimer le compte.",
        )
    email = str(row["email"]).lower()
    out: dict[str, int] = {}

    async def run(name: str, query: str, *args: object) -> None:
        out[name] = out.get(name, 0) + rows_affected(await conn.execute(query, *args))

    # The CDRs of its calls (keyed by the attempt id), before the attempts go.
    await run(
        "asterisk_cdr",
        "DELETE FROM asterisk_cdr WHERE uniqueid IN (SELECT a.id::text FROM attempts a "
        "JOIN sends s ON s.id = a.send_id WHERE s.account_id = $1) OR accountcode = $1::text",
        account_id,
    )
    await run("webhook_events", "DELETE FROM webhook_events WHERE account_id = $1", account_id)
    await run("completion_emails", "DELETE FROM completion_emails WHERE account_id = $1", account_id)
    # Sends take their recipients, attempts, per-send webhooks and completion e-mails along (cascades).
    await run("sends", "DELETE FROM sends WHERE account_id = $1", account_id)
    await run(
        "accounts",
        "UPDATE accounts SET email = 'supprime-' || id || '@invalid', password_hash = $2, code_digest = $3, "
        "default_greeting_enabled = false, default_greeting_message_id = NULL, "
        "default_transfer_number = NULL, default_sender_number_id = NULL, "
        "deleted_at = coalesce(deleted_at, now()) WHERE id = $1",
        account_id,
        tombstone.password_hash,
        tombstone.code_digest,
    )
    for table in (
        "messages",
        "contacts",
        "contact_groups",
        "sender_numbers",
        "account_stop_list",
        "api_tokens",
        "web_sessions",
        "password_resets",
        "login_trusted",
        "account_clients",
        "webhook_settings",
        "account_notifications",
        "refused_requests",
    ):
        await run(table, f"DELETE FROM {table} WHERE account_id = $1", account_id)  # noqa: S608 - constant names
    # Counters keyed by the login (failed logins, reset links, e-mail replies).
    await run("rate_events", "DELETE FROM rate_events WHERE strpos(lower(key), $1) > 0", email)
    await run("login_throttle", "DELETE FROM login_throttle WHERE strpos(lower(key), $1) > 0", email)
    await run(
        "credit_ledger",
        "UPDATE credit_ledger SET reason = regexp_replace(reason, $2, '…', 'g') "
        "WHERE account_id = $1 AND reason ~ $2",
        account_id,
        _DIGIT_RUN,
    )
    return {k: v for k, v in out.items() if v}


# (table, free-text column, its account column): where a number may appear in words.
_FREE_TEXT: Final = (
    ("sends", "comment", "account_id"),
    ("credit_ledger", "reason", "account_id"),
    ("messages", "title", "account_id"),
    ("messages", "original_name", "account_id"),
    ("api_tokens", "label", "account_id"),
)


# --- one number -----------------------------------------------------------------------------------------


async def find_number(
    conn: asyncpg.Connection, account_id: UUID | None, e164: str, stop_hashes: Sequence[str]
) -> dict[str, int]:
    """How many rows of each kind hold the number (in the account, or everywhere)."""
    args = (account_id, e164, list(stop_hashes), spellings(e164))
    out: dict[str, int] = {}
    for name, query in NUMBER_EXPORT.items():
        out[name] = int(await conn.fetchval(f"SELECT count(*) FROM ({query}) q", *args))  # noqa: S608 - constant queries
    return out


async def erase_number(
    conn: asyncpg.Connection, account_id: UUID | None, e164: str, *, key: str
) -> dict[str, int]:
    """Erase a number in the account (or everywhere: ``account_id`` None), in the caller's transaction:
    its contacts and webhook events deleted, its place in sends and CDRs pseudonymised (the history still
    counts), its stop-list entries kept by their hash only, its use as a sender or transfer number
    cleared. Returns the rows changed per table."""
    out: dict[str, int] = {}
    every = spellings(e164)

    async def run(name: str, query: str, *args: object) -> None:
        out[name] = out.get(name, 0) + rows_affected(await conn.execute(query, *args))

    keyed = _pseudonym_sql("$1::text", "$2::text")
    cdr_set = f"UPDATE asterisk_cdr SET dst = {keyed}, {_cdr_cleared('$3')} "  # noqa: S608 - constant SQL
    # The CDRs of the number's calls (by attempt id, an index), before the recipients lose the number.
    await run(
        "asterisk_cdr",
        cdr_set + "WHERE uniqueid IN (SELECT a.id::text FROM attempts a "  # noqa: S608 - constant SQL
        "JOIN send_recipients r ON r.id = a.recipient_id JOIN sends s ON s.id = a.send_id "
        "WHERE r.e164 = $1 AND ($4::uuid IS NULL OR s.account_id = $4))",
        e164,
        key,
        _DIGIT_RUN,
        account_id,
    )
    if account_id is None:
        # Everywhere: also CDRs no attempt names any more (a scan: an operator's rare request).
        await run(
            "asterisk_cdr",
            cdr_set + "WHERE dst = ANY ($4::text[])",
            e164,
            key,
            _DIGIT_RUN,
            every,
        )
    await run(
        "send_recipients",
        f"UPDATE send_recipients r SET e164 = {_pseudonym_sql('r.e164', '$3::text')} FROM sends s "  # noqa: S608 - constant SQL
        "WHERE s.id = r.send_id AND r.e164 = $2 AND ($1::uuid IS NULL OR s.account_id = $1)",
        account_id,
        e164,
        key,
    )
    await run(
        "webhook_events",
        "DELETE FROM webhook_events WHERE ($1::uuid IS NULL OR account_id = $1) "
        "AND (object::text LIKE ANY (SELECT '%' || s || '%' FROM unnest($2::text[]) s) "
        "OR body LIKE ANY (SELECT '%' || s || '%' FROM unnest($2::text[]) s))",
        account_id,
        every,
    )
    await run(
        "contacts",
        "DELETE FROM contacts WHERE e164 = $2 AND ($1::uuid IS NULL OR account_id = $1)",
        account_id,
        e164,
    )
    # Stop-listed it stays, by its keyed hash only: its clear form and its plain SHA-256 (as good as
    # clear: every number is hashed in seconds) go, an entry imported hashed by the customer included.
    plain, keyed = number_hash(e164), keyed_hash(e164, key)
    await run(
        "account_stop_list",
        "DELETE FROM account_stop_list c WHERE (c.e164 = $2 OR c.number_hash = $3) "
        "AND ($1::uuid IS NULL OR c.account_id = $1) AND EXISTS (SELECT 1 FROM account_stop_list k "
        "WHERE k.account_id = c.account_id AND k.number_hash = $4)",
        account_id,
        e164,
        plain,
        keyed,
    )
    await run(
        "account_stop_list",
        "UPDATE account_stop_list SET number_hash = $4, e164 = NULL WHERE (e164 = $2 OR number_hash = $3) "
        "AND ($1::uuid IS NULL OR account_id = $1)",
        account_id,
        e164,
        plain,
        keyed,
    )
    await run(
        "accounts",
        "UPDATE accounts SET default_transfer_number = NULL WHERE default_transfer_number = $2 "
        "AND ($1::uuid IS NULL OR id = $1)",
        account_id,
        e164,
    )
    await run(
        "sends",
        "UPDATE sends SET transfer_number = NULLIF(transfer_number, $2), "
        "sender_e164 = NULLIF(sender_e164, $2) "
        "WHERE $2 IN (transfer_number, sender_e164) AND ($1::uuid IS NULL OR account_id = $1)",
        account_id,
        e164,
    )
    await run(
        "sender_numbers",
        "DELETE FROM sender_numbers WHERE e164 = $2 AND ($1::uuid IS NULL OR account_id = $1)",
        account_id,
        e164,
    )
    # Free text the customer or the operator typed (a comment, a ledger reason, a title, a label).
    for table, column, owner in _FREE_TEXT:
        for spelling in every:
            await run(
                table,
                f"UPDATE {table} SET {column} = replace({column}, $2, '…') "  # noqa: S608 - constant names
                f"WHERE strpos({column}, $2) > 0 AND ($1::uuid IS NULL OR {owner} = $1)",
                account_id,
                spelling,
            )
    if account_id is None:
        # Not tied to an account: the operator's list and the recording IVR's guard.
        await run(
            "operator_stop_list",
            "DELETE FROM operator_stop_list WHERE (e164 = $1 OR number_hash = $2) "
            "AND EXISTS (SELECT 1 FROM operator_stop_list WHERE number_hash = $3)",
            e164,
            plain,
            keyed,
        )
        await run(
            "operator_stop_list",
            "UPDATE operator_stop_list SET number_hash = $3, e164 = NULL WHERE e164 = $1 OR number_hash = $2",
            e164,
            plain,
            keyed,
        )
        await run("ivr_code_failures", "DELETE FROM ivr_code_failures WHERE caller = ANY ($1::text[])", every)
        await run(
            "ivr_blocked_callers", "DELETE FROM ivr_blocked_callers WHERE caller = ANY ($1::text[])", every
        )
    return {k: v for k, v in out.items() if v}


# --- retention ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurgedMessage:
    audio_stem: str
    original_file: str


async def pseudonymise_before(conn: asyncpg.Connection, before: datetime, *, key: str) -> dict[str, int]:
    """Numbers older than ``before`` replaced by their keyed hash: the recipients of sends that ended
    before it, the callee of CDRs that started before it (the other number-like runs of a CDR cleared),
    the masked numbers of refused requests."""
    out: dict[str, int] = {}
    status = await conn.execute(
        f"UPDATE send_recipients r SET e164 = {_pseudonym_sql('r.e164', '$2::text')} FROM sends s "  # noqa: S608 - constant SQL
        "WHERE s.id = r.send_id AND s.ended_at < $1 AND r.e164 LIKE '+%'",
        before,
        key,
    )
    out["send_recipients"] = rows_affected(status)
    # A CDR's dst is the number as the trunk was given it: a French national form is keyed as E.164, so
    # that one number has one pseudonym.
    e164_of_dst = "CASE WHEN dst ~ '^0[1-9][0-9]{8}$' THEN '+33' || substr(dst, 2) ELSE dst END"
    status = await conn.execute(
        f"UPDATE asterisk_cdr SET dst = {_pseudonym_sql(e164_of_dst, '$2::text')}, "  # noqa: S608 - constant SQL
        f"{_cdr_cleared('$3')} "
        "WHERE start < $1 AND dst IS NOT NULL AND dst <> '' AND dst NOT LIKE '#%'",
        before,
        key,
        _DIGIT_RUN,
    )
    out["asterisk_cdr"] = rows_affected(status)
    # Refusals keep numbers masked (+336…5678) already: there is no whole number left to key; removed.
    status = await conn.execute(
        "UPDATE refused_requests SET detail = regexp_replace(detail, 'numero=.*$', 'numero=#') "
        "WHERE at < $1 AND detail ~ 'numero=.*[0-9]'",
        before,
    )
    out["refused_requests"] = rows_affected(status)
    return out


async def delete_inbound_cdrs(conn: asyncpg.Connection, before: datetime) -> int:
    """Delete the CDRs of inbound calls (every context of the inbound dialplan: the recording line, its
    busy refusals, call-backs, unallocated numbers) that started before ``before``; a CDR an attempt
    names (uniqueid) is an outbound call's and stays."""
    status = await conn.execute(
        "DELETE FROM asterisk_cdr c WHERE coalesce(c.start, c.inserted_at) < $1 "
        "AND c.dcontext LIKE 'vocalcast-inbound%' "
        "AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.id::text = c.uniqueid)",
        before,
    )
    return rows_affected(status)


async def forget_deleted_messages(conn: asyncpg.Connection, before: datetime) -> list[PurgedMessage]:
    """Messages deleted before ``before`` lose their title and file name (their files were removed at
    deletion; the caller removes any left). Returns their files."""
    rows = await conn.fetch(
        "UPDATE messages SET title = 'Message supprimé', original_name = NULL "
        "WHERE deleted_at < $1 AND (title <> 'Message supprimé' OR original_name IS NOT NULL) "
        "RETURNING audio_stem, original_file",
        before,
    )
    return [PurgedMessage(r["audio_stem"], r["original_file"]) for r in rows]
