"""Crontab lines as APScheduler triggers, with crontab's weekday numbering. Pure."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday


def cron_trigger(expression: str) -> CronTrigger:
    """A UTC CronTrigger for a standard crontab line.

    APScheduler 3 numbers weekdays from Monday = 0, unlike crontab (Sunday = 0); the weekday field
    is rewritten as names so ``0 3 * * 1`` means Monday, as an operator expects.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields, not {len(fields)}: {expression!r}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekday_names(weekday),
        timezone=UTC,
    )


def _weekday_names(field: str) -> str:
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 0
        if step_text and step < 1:
            raise ValueError(f"invalid weekday step in {field!r}")
        if base == "*":
            first, last = 0, 6
        else:
            first_text, _, last_text = base.partition("-")
            first = _weekday_number(first_text)
            last = _weekday_number(last_text) if last_text else (6 if step else first)
        if last < first:
            raise ValueError(f"invalid weekday range {base!r}")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    """0-7 (0 and 7 are Sunday) or a name; 7 is kept so that ``5-7`` is a valid range."""
    text = text.strip().lower()
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(text[:3])
    raise ValueError(f"invalid weekday {text!r} (use 0-7 or sun..sat)")


def shortest_gap(expression: str, *, now: datetime, fires: int = 48) -> timedelta:
    """The shortest spacing of the next ``fires`` fire times of a crontab line."""
    trigger = cron_trigger(expression)
    times: list[datetime] = []
    after = now
    for _ in range(fires):
        fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        if fire is None:  # pragma: no cover - a crontab line always fires again
            break
        times.append(fire)
        after = fire
    return min((b - a for a, b in itertools.pairwise(times)), default=timedelta.max)
