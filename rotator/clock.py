"""Time, in one place: every timestamp rotator makes is timezone-aware UTC.

One text form, ISO-8601 with microseconds and ``+00:00``, is what rotator writes (audit hashes,
JSON, Vault records); ``parse`` also reads the ``Z`` and second-precision forms older versions
wrote, and the millisecond forms Vonage sends.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The one text form of a moment: UTC ISO-8601, microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def parse(text: str) -> datetime:
    """Read an ISO-8601 moment (``Z`` or an offset, any sub-second precision) as aware UTC.

    A moment without an offset is taken as UTC. Raises ``ValueError`` on anything else.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


__all__ = ["iso", "iso_or_none", "parse", "utcnow"]
