"""The control API's JSON request bodies, validated strictly: pure, no I/O.

Every field has a type and a size; unknown fields are refused (a typo such as ``"emergancy"``
must not silently run a plain rotation); text must be printable (it ends up in the audit log,
alerts and terminals).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

REASON_MAX: Final = 500


class BodyError(ValueError):
    """A body the API refuses (400); the message names the field, never echoes the value."""


@dataclass(frozen=True, kw_only=True)
class Request:
    reason: str | None = None
    emergency: bool = False
    until: str | None = None  # pause: a UTC time or a duration, as `rotator pause --until`


_FIELDS: Final = {
    "rotate": {"reason", "emergency"},
    "rollback": {"reason"},
    "pause": {"reason", "until"},
    "resume": {"reason"},
}


def parse_body(action: str, body: bytes) -> Request:
    """The request of ``action`` from its JSON body (empty: no fields)."""
    data = _object(body)
    unknown = set(data) - _FIELDS.get(action, set())
    if unknown:
        raise BodyError(f"unknown field(s) for {action}: {', '.join(sorted(map(_name, unknown)))}")
    reason = _text(data, "reason", REASON_MAX)
    emergency = data.get("emergency", False)
    if not isinstance(emergency, bool):
        raise BodyError("emergency must be true or false")
    until = _text(data, "until", 64)
    if action == "pause" and not reason:
        raise BodyError("pause needs a reason (it goes in the audit log)")
    return Request(reason=reason, emergency=emergency, until=until)


def _object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BodyError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BodyError("the body must be a JSON object")
    return data


def _text(data: dict[str, Any], field: str, limit: int) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise BodyError(f"{field} must be printable text of at most {limit} characters")
    return value.strip() or None


def _name(field: str) -> str:
    return field[:40] if field.isprintable() else "?"


__all__ = ["REASON_MAX", "BodyError", "Request", "parse_body"]
