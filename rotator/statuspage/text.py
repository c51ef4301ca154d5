"""Text on the status page: every value escaped (markup AND terminal control characters), and
moments and durations shown the same way everywhere."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from rotator.durations import format_duration

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def esc(value: object) -> str:
    """``value`` safe inside HTML/SVG text or a quoted attribute: markup escaped, control
    characters (ANSI escapes, NUL) shown as ``\\xNN`` instead of passed through."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return html.escape(text, quote=True)


def shown(moment: datetime | None) -> str | None:
    """/status shows moments to the second: a contract with whoever scrapes it."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def age(delta: timedelta | None) -> str:
    return "unknown" if delta is None else format_duration(delta)


def relative(moment: datetime | None, now: datetime) -> str:
    """``2024-01-01T12:00:00+00:00 (3h from now)``; ``-`` for none."""
    text = shown(moment)
    if moment is None or text is None:
        return "-"
    delta = (moment.replace(microsecond=0) - now.replace(microsecond=0)).total_seconds()
    if abs(delta) < 1:
        return f"{text} (now)"
    return f"{text} ({age(timedelta(seconds=abs(delta)))} {'from now' if delta > 0 else 'ago'})"


def countdown(moment: datetime | None, now: datetime) -> str:
    """Time left until ``moment`` (``overdue`` once passed)."""
    if moment is None:
        return "-"
    left = moment - now
    return "overdue" if left <= timedelta(0) else f"{format_duration(left)} left"


__all__ = ["age", "countdown", "esc", "relative", "shown"]
