"""The component schemas of the OpenAPI document (engine/web/openapi.py) and the request examples.

Bounds come from the same constants the handlers and the domain check.
"""

from __future__ import annotations

from typing import Any, Final

from engine.domain import contacts as contact_rules
from engine.domain.accounts import (
    MAX_RETRIES,
    RETRY_INTERVAL_MAX_S,
    RETRY_INTERVAL_MIN_S,
    TITLE_MAX_LENGTH,
)
from engine.domain.sends import MAX_COMMENT
from engine.domain.tokens import LABEL_MAX_LENGTH
from engine.domain.webhooks import EVENT_TYPES, TEST_EVENT, URL_MAX_LENGTH
from engine.services.accounts import COMPANY_NAME_MAX
from engine.web.api_common import INT32_MAX, INT64_MAX

Schema = dict[str, Any]

# --- schema helpers -------------------------------------------------------------------------------------

STRING: Final[Schema] = {"type": "string"}
INTEGER: Final[Schema] = {"type": "integer"}
BOOLEAN: Final[Schema] = {"type": "boolean"}
NUMBER: Final[Schema] = {"type": "number"}
DATETIME: Final[Schema] = {"type": "string", "format": "date-time"}
UUID_: Final[Schema] = {"type": "string", "format": "uuid"}
BINARY: Final[Schema] = {"type": "string", "format": "binary"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    if "type" in schema and isinstance(schema["type"], str) and "$ref" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **bounds: int) -> Schema:
    return {"type": "array", "items": items, **bounds}


def integer(lo: int, hi: int) -> Schema:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def text(max_length: int, **more: Any) -> Schema:
    return {"type": "string", "maxLength": max_length, **more}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, **more: Any) -> Schema:
    """A closed object: no property beyond those listed."""
    properties = {**required, **(optional or {})}
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return {**out, **more}


# --- schemas --------------------------------------------------------------------------------------------

_REFUSED_LINE = obj({"line": INTEGER, "input": STRING, "code": STRING, "message": STRING})

_SEND_FIELDS: Final[dict[str, Schema]] = {
    "id": UUID_,
    "origin": {"type": "string", "enum": ["web", "http", "email", "api", "cli"]},
    "status": {"type": "string", "enum": ["scheduled", "running", "paused", "completed", "cancelled"]},
    "status_label": STRING,
    "code": nullable(STRING),
    "comment": STRING,
    "message_ref": nullable(INTEGER),
    "greeting_ref": nullable(INTEGER),
    "transfer_number": nullable(STRING),
    "sender_number": nullable(STRING),
    "retries": INTEGER,
    "retry_interval_s": INTEGER,
    "voicemail_drop": BOOLEAN,
    "scheduled_at": DATETIME,
    "deferred": BOOLEAN,
    "recipients": INTEGER,
    "credits_held": INTEGER,
    "credits_used": INTEGER,
    "demo": BOOLEAN,
    "created_at": DATETIME,
    "started_at": nullable(DATETIME),
    "ended_at": nullable(DATETIME),
    "purpose": {"type": "string", "enum": ["information", "commercial"]},
    "stop_listed_skipped": INTEGER,
}
_OUTCOME_COUNTS: Final[Schema] = {"type": "object", "additionalProperties": INTEGER}

_TARGETS: Final[dict[str, Schema]] = {
    "numbers": array(text(100), maxItems=100_000),
    "text": text(2 * 1024 * 1024),
    "contact_ids": array(integer(1, INT64_MAX), maxItems=100_000),
    "group_ids": array(integer(1, INT64_MAX), maxItems=contact_rules.MAX_GROUPS),
    "subset_contact_ids": nullable(array(integer(1, INT64_MAX), maxItems=100_000)),
}

_EVENT_TYPE: Final[Schema] = {"type": "string", "enum": list(EVENT_TYPES)}
_WEBHOOK: Final[dict[str, Schema]] = {
    "url": nullable(STRING),
    "events": array(_EVENT_TYPE),
    "enabled": BOOLEAN,
    "disabled_at": nullable(DATETIME),
    "disabled_reason": nullable(STRING),
    "updated_at": nullable(DATETIME),
}
_DELIVERY: Final[dict[str, Schema]] = {
    "id": UUID_,
    "type": {"type": "string", "enum": [*EVENT_TYPES, TEST_EVENT]},
    "send_id": nullable(UUID_),
    "sequence": INTEGER,
    "occurred_at": DATETIME,
    "url": STRING,
    "status": {"type": "string", "enum": ["pending", "delivered", "failed", "dropped"]},
    "tries": INTEGER,
    "next_try_at": nullable(DATETIME),
    "last_status": nullable(INTEGER),
    "last_error": nullable(STRING),
    "last_latency_ms": nullable(INTEGER),
    "delivered_at": nullable(DATETIME),
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": obj(
        {"code": STRING, "message": STRING},
        {"details": array(ref("RefusedLine"))},
        description="« message » est en français, à montrer tel quel ; « code » est stable.",
    ),
    "Account": obj(
        {
            "id": UUID_,
            "email": STRING,
            "credits": ref("Credits"),
            "allow_international": BOOLEAN,
            "allow_voicemail_drop": BOOLEAN,
            "created_at": DATETIME,
        }
    ),
    "Credits": obj({"available": INTEGER, "reserved": INTEGER}),
    "LedgerEntry": obj(
        {
            "id": INTEGER,
            "at": DATETIME,
            "kind": {"type": "string", "enum": ["credit", "reserve", "consume", "release"]},
            "amount": INTEGER,
            "held": INTEGER,
            "reason": STRING,
            "send_id": nullable(UUID_),
        }
    ),
    "LedgerPage": obj({"entries": array(ref("LedgerEntry")), "next_before_id": nullable(INTEGER)}),
    "SendDefaults": obj(
        {
            "greeting_ref": nullable(INTEGER),
            "transfer_number": nullable(STRING),
            "sender_number": nullable(STRING),
            "retries": INTEGER,
            "retry_interval_s": INTEGER,
            "voicemail_drop": BOOLEAN,
            # Issue 18: the purpose of the http.php and e-mail sends; the company a commercial call names.
            "purpose": {"type": "string", "enum": ["information", "commercial"]},
            "company_name": nullable(STRING),
        }
    ),
    "SendDefaultsInput": obj(
        {
            "greeting_ref": nullable(integer(1, INT32_MAX)),
            "transfer_number": nullable(text(40)),
            "sender_number": nullable(text(40)),
            "retries": integer(0, MAX_RETRIES),
            "retry_interval_s": integer(RETRY_INTERVAL_MIN_S, RETRY_INTERVAL_MAX_S),
            "voicemail_drop": BOOLEAN,
        },
        {
            # Absent: unchanged. commercial needs a company name; null removes it, refused while the
            # purpose is commercial or a commercial send is unfinished (400 company_required).
            "purpose": {"type": "string", "enum": ["information", "commercial"]},
            "company_name": nullable(text(COMPANY_NAME_MAX)),
        },
    ),
    "PersonalCode": obj({"code": {"type": "string", "pattern": "^[0-9]{8}$"}}),
    "Sender": obj(
        {
            "id": INTEGER,
            "number": STRING,
            "status": {"type": "string", "enum": ["pending", "verified"]},
            "is_mobile": BOOLEAN,
            "in_automated_range": BOOLEAN,
            "declared_at": DATETIME,
            "verified_at": nullable(DATETIME),
        }
    ),
    "SenderList": obj({"senders": array(ref("Sender"))}),
    "SenderInput": obj({"number": text(40)}),
    "Token": obj(
        {
            "id": INTEGER,
            "label": text(LABEL_MAX_LENGTH),
            "created_at": DATETIME,
            "last_used_at": nullable(DATETIME),
            "revoked_at": nullable(DATETIME),
        }
    ),
    "TokenList": obj({"tokens": array(ref("Token"))}),
    "Message": obj(
        {
            "ref": INTEGER,
            "title": STRING,
            "is_greeting": BOOLEAN,
            "greeting_pending": BOOLEAN,
            "origin": {"type": "string", "enum": ["phone", "file"]},
            "duration_s": NUMBER,
            "original_name": nullable(STRING),
            "created_at": DATETIME,
        }
    ),
    "MessageList": obj({"messages": array(ref("Message"))}),
    "MessageUpload": obj(
        {"file": BINARY},
        {"title": text(TITLE_MAX_LENGTH), "greeting": BOOLEAN},
    ),
    "MessageRename": obj({"title": text(TITLE_MAX_LENGTH, minLength=1)}),
    "Targets": obj({}, _TARGETS),
    "RefusedLine": _REFUSED_LINE,
    "RecipientsReport": obj(
        {
            "accepted": array(
                obj(
                    {
                        "line": INTEGER,
                        "input": STRING,
                        "number": STRING,
                        "type": ref("NumberType"),
                        "is_mobile": BOOLEAN,
                    }
                )
            ),
            "refused": array(ref("RefusedLine")),
            "duplicates": array(
                obj({"line": INTEGER, "input": STRING, "number": STRING, "duplicate_of": INTEGER})
            ),
            "from_contacts": INTEGER,
            "recipients": INTEGER,
            "credits": INTEGER,
            "available": INTEGER,
            "enough_credits": BOOLEAN,
        }
    ),
    "NumberType": {"type": "string", "enum": ["mobile", "fixed", "voip", "overseas", "international"]},
    "Consent": obj(
        {
            "given_at": nullable(DATETIME),
            "source": nullable(STRING),
            "proof": nullable(STRING),
            "withdrawn_at": nullable(DATETIME),
            "valid": BOOLEAN,
        }
    ),
    "ConsentInput": obj({"source": text(200)}, {"given_at": DATETIME, "proof": text(2000)}),
    "SendCreate": obj(
        {
            "message_ref": integer(1, INT32_MAX),
            # Every API send states its purpose (issue 18); commercial: refused unless lawful.
            "purpose": {"type": "string", "enum": ["information", "commercial"]},
        },
        {
            **_TARGETS,
            "greeting_ref": nullable(integer(1, INT32_MAX)),
            "transfer_number": nullable(text(40)),
            "sender_number": nullable(text(40)),
            "retries": integer(0, MAX_RETRIES),
            "retry_interval_s": integer(RETRY_INTERVAL_MIN_S, RETRY_INTERVAL_MAX_S),
            "voicemail_drop": BOOLEAN,
            "at": DATETIME,
            "deferred": {"type": "string", "pattern": "^[0-9]{12}$"},
            "comment": text(MAX_COMMENT),
            "skip_refused": BOOLEAN,
            "webhook": nullable(ref("SendWebhookInput")),
        },
    ),
    "Progress": obj(
        {
            "total": INTEGER,
            "done": INTEGER,
            "calling": INTEGER,
            "pending": INTEGER,
            "cancelled": INTEGER,
            "attempts": INTEGER,
            "credits_used": INTEGER,
            "outcomes": _OUTCOME_COUNTS,
            "estimated_end_at": nullable(DATETIME),
        },
        {
            # A running commercial send whose metropolitan calls wait for the next legal window (issue 18):
            # why (hors plage horaire, jour férié), until when, and the sentence the pages show.
            "window_wait": nullable(
                obj(
                    {
                        "reason": {"type": "string", "enum": ["outside_hours", "holiday"]},
                        "label": STRING,
                        "until": nullable(DATETIME),
                        "note": STRING,
                    }
                )
            ),
        },
    ),
    "SendSummary": obj({**_SEND_FIELDS, "outcomes": _OUTCOME_COUNTS}),
    "SendDetail": obj(
        {**_SEND_FIELDS, "progress": ref("Progress"), "transfers": ref("TransferUsage")},
        {"refused": array(ref("RefusedLine"))},
    ),
    # Transfers (touche 9) whose call centre answered, their started minutes, and the credits charged for
    # the minutes beyond the first (VOCALCAST_TRANSFER_MINUTE_CREDITS each).
    "TransferUsage": obj({"answered": INTEGER, "minutes": INTEGER, "credits": INTEGER}),
    "SendPage": obj({"sends": array(ref("SendSummary")), "next_before": nullable(DATETIME)}),
    "Call": obj(
        {
            "attempt_no": INTEGER,
            "outcome": nullable(STRING),
            "sip_code": nullable(INTEGER),
            "cause": nullable(INTEGER),
            "created_at": DATETIME,
            "ended_at": nullable(DATETIME),
            "ring_s": nullable(NUMBER),
            "talk_s": nullable(NUMBER),
            "transfer_outcome": nullable(STRING),
            "transfer_s": nullable(NUMBER),
        }
    ),
    "Recipient": obj(
        {
            "id": INTEGER,
            "number": STRING,
            "state": {"type": "string", "enum": ["pending", "calling", "done", "cancelled"]},
            "outcome": nullable(STRING),
            "outcome_label": nullable(STRING),
            "attempts": INTEGER,
            "final_at": nullable(DATETIME),
            # Waiting for a trunk (no_route: no healthy trunk may carry the number; trunk_failure: the
            # trunk failed the call, which will go through another), never counted as an attempt.
            "waiting": {"type": ["string", "null"], "enum": ["no_route", "trunk_failure", None]},
            "next_attempt_at": nullable(DATETIME),
            "note": STRING,
            "calls": array(ref("Call")),
        }
    ),
    "RecipientPage": obj({"recipients": array(ref("Recipient")), "next_after": nullable(INTEGER)}),
    "GroupRef": obj({"id": INTEGER, "name": STRING}),
    "Contact": obj(
        {
            "id": INTEGER,
            "societe": STRING,
            "nom": STRING,
            "prenom": STRING,
            "number": STRING,
            "type": ref("NumberType"),
            "is_mobile": BOOLEAN,
            "groups": array(ref("GroupRef")),
            "created_at": DATETIME,
            "updated_at": DATETIME,
        }
    ),
    "ContactInput": obj(
        {"phone": text(100)},
        {
            "societe": text(contact_rules.FIELD_MAX_LENGTH),
            "nom": text(contact_rules.FIELD_MAX_LENGTH),
            "prenom": text(contact_rules.FIELD_MAX_LENGTH),
            "group_ids": array(integer(1, INT64_MAX), maxItems=contact_rules.MAX_GROUPS),
        },
    ),
    "ContactUpdate": obj(
        {},
        {
            "phone": text(100),
            "societe": text(contact_rules.FIELD_MAX_LENGTH),
            "nom": text(contact_rules.FIELD_MAX_LENGTH),
            "prenom": text(contact_rules.FIELD_MAX_LENGTH),
            "group_ids": array(integer(1, INT64_MAX), maxItems=contact_rules.MAX_GROUPS),
        },
    ),
    "ContactPage": obj(
        {"contacts": array(ref("Contact")), "next_cursor": nullable(STRING), "total": INTEGER}
    ),
    "Group": obj({"id": INTEGER, "name": STRING, "member_count": INTEGER, "created_at": DATETIME}),
    "GroupList": obj({"groups": array(ref("Group"))}),
    "GroupInput": obj({"name": text(contact_rules.GROUP_NAME_MAX_LENGTH, minLength=1)}),
    "MembersInput": obj({"contact_ids": array(integer(1, INT64_MAX), maxItems=10_000)}),
    "MembersAdded": obj({"added": INTEGER, "group": ref("Group")}),
    "CsvUpload": obj({"file": BINARY}),
    "ImportReport": obj(
        {
            "imported": INTEGER,
            "updated": INTEGER,
            "refused": array(obj({"row": INTEGER, "error": STRING, "message": STRING, "input": STRING})),
            "groups_created": INTEGER,
            "duplicates_in_file": INTEGER,
            "memberships_added": INTEGER,
        }
    ),
    # --- webhooks ---
    "Notifications": obj({"completion_email": BOOLEAN}),
    "WebhookSettings": obj(_WEBHOOK),
    "WebhookSaved": obj({**_WEBHOOK, "secret": nullable(STRING)}),
    "WebhookInput": obj(
        {"url": nullable(text(URL_MAX_LENGTH, pattern="^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"))},
        {"events": array({"type": "string", "enum": list(EVENT_TYPES)}, maxItems=len(EVENT_TYPES))},
    ),
    "WebhookSecret": obj({"secret": STRING}),
    "SendWebhook": obj(
        {
            "url": nullable(STRING),
            "events": nullable(array(_EVENT_TYPE)),
            "disabled_at": nullable(DATETIME),
            "disabled_reason": nullable(STRING),
        }
    ),
    "SendWebhookInput": obj(
        {"url": text(URL_MAX_LENGTH, pattern="^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$")},
        {"events": array(_EVENT_TYPE, maxItems=len(EVENT_TYPES))},
    ),
    "WebhookDelivery": obj(_DELIVERY),
    "WebhookDeliveryDetail": obj(
        {
            **_DELIVERY,
            "attempts": array(
                obj(
                    {
                        "at": DATETIME,
                        "status": nullable(INTEGER),
                        "error": nullable(STRING),
                        "latency_ms": INTEGER,
                    }
                )
            ),
        }
    ),
    "WebhookDeliveryPage": obj(
        {"deliveries": array(ref("WebhookDelivery")), "next_before": nullable(DATETIME)}
    ),
}

# Request examples: shown in the documentation, and sent as they are by schemathesis' explicit phase.
EXAMPLES: Final[dict[str, Any]] = {
    "SendDefaultsInput": {
        "greeting_ref": None,
        "transfer_number": "01 45 67 89 03",
        "sender_number": None,
        "retries": 2,
        "retry_interval_s": 1800,
        "voicemail_drop": False,
    },
    "SenderInput": {"number": "01 62 00 00 00"},
    "MessageRename": {"title": "Relance clients"},
    "Targets": {"text": "06 12 34 56 78\n01 45 67 89 03\n06 12 34 56 78\n08 99 12 34 56"},
    "SendCreate": {
        "message_ref": 1,
        "numbers": ["06 12 34 56 78", "01 45 67 89 03"],
        "transfer_number": "01 45 67 89 03",
        "retries": 1,
        "retry_interval_s": 900,
        "comment": "Relance impayés",
    },
    "ContactInput": {"phone": "06 98 76 54 32", "societe": "Mairie", "nom": "Dupont", "prenom": "Jean"},
    "ContactUpdate": {"prenom": "Jeanne"},
    "GroupInput": {"name": "Clients Lyon"},
    "MembersInput": {"contact_ids": [1, 2]},
    "WebhookInput": {"url": "https://exemple.fr/vocalcast/evenements", "events": ["recipient.final"]},
}
