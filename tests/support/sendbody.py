"""The body of an API send (POST /api/v1/sends): every API send states its purpose (issue 18)."""

from __future__ import annotations

from typing import Any


def send_body(fields: dict[str, Any], *, purpose: str = "information") -> dict[str, Any]:
    """``fields`` with the send's purpose (information unless told); a purpose in ``fields`` wins."""
    return {"purpose": purpose, **fields}
