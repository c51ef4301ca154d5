"""Human durations ("90s", "30d", "1h30m") to ``timedelta``. Pure."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_LONGEST = timedelta(days=365 * 100).total_seconds()  # past this a duration is a typo


def _seconds(value: float) -> timedelta:
    """A timedelta, refusing what it cannot hold (NaN, infinity, > 100 years) with a ValueError."""
    if value != value or value > _LONGEST:
        raise ValueError(f"a duration of {value:g} seconds is out of range (at most 100 years)")
    return timedelta(seconds=value)


def parse_duration(value: object) -> timedelta:
    """Accept a timedelta, a number of seconds, or a string like ``1h30m``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '12h', '30d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.replace(".", "", 1).isdigit():
            return _seconds(float(text))
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return _seconds(total)
    raise ValueError(
        f"not a duration: {value!r} (use a number of seconds or e.g. '30s', '15m', '12h', '30d')"
    )


def format_duration(delta: timedelta) -> str:
    """The shortest readable form: ``2d3h``, ``45s``, ``0s``."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])
