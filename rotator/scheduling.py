"""When each key is due: pure schedule maths for the daemon (no clock, no I/O).

A key's next rotation follows from its last success in the audit log, so a restart neither resets
the cadence nor triggers a storm. Jitter is a fixed per-key offset derived from a hash of the API
key (not Python's salted ``hash``), so every process and every restart agrees on it. A key never
rotated is due at the moment it was first seen plus its offset, which spreads a fleet of new keys.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from rotator.config import WEEKDAYS, Schedule, Window

if TYPE_CHECKING:  # APScheduler only for cron schedules (``rotator rotate`` needs none of it)
    from apscheduler.triggers.cron import CronTrigger

_CRON_LOOKAHEAD = 12  # fire times examined to find a cron schedule's longest gap


def selected(
    api_key: str, name: str | None, *, include: Iterable[str], exclude: Iterable[str]
) -> bool:
    """True when a glob of ``include`` matches the key or its name and none of ``exclude`` does."""
    subjects = [api_key] if name is None else [api_key, name]

    def matches(patterns: Iterable[str]) -> bool:
        return any(fnmatchcase(s, p) for p in patterns for s in subjects)

    return matches(include) and not matches(exclude)


def jitter_offset(api_key: str, jitter: timedelta) -> timedelta:
    """A stable offset in ``[0, jitter)`` for this key: the same in every process, every run."""
    if jitter <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(api_key.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(microseconds=int(jitter / timedelta(microseconds=1) * fraction))


def _next_fire(trigger: CronTrigger, after: datetime) -> datetime:
    """The first fire time strictly after ``after``."""
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:  # pragma: no cover - a crontab line without an end date always fires again
        raise ValueError("the cron expression never fires again")
    return fire.astimezone(UTC)  # type: ignore[no-any-return]


def next_due(
    schedule: Schedule,
    *,
    api_key: str,
    last_success: datetime | None,
    first_seen: datetime,
    last_failure: datetime | None = None,
    retry_delay: timedelta = timedelta(0),
    spread_new: bool = True,
) -> datetime:
    """When ``api_key`` should next be rotated.

    ``last_success``: start of its last successful run (the audit log). ``first_seen``: when the
    daemon first saw a key that was never rotated. ``last_failure``: end of its newest run if that
    one failed or was rolled back; the key is then retried ``retry_delay`` later, not at once.
    ``spread_new=False`` makes a never-rotated key due at ``first_seen`` exactly (``--once``).
    """
    offset = jitter_offset(api_key, schedule.jitter)
    if last_success is None:
        due = first_seen + offset if spread_new else first_seen
    elif schedule.interval is not None:
        due = last_success + schedule.interval + offset
    else:
        assert schedule.cron is not None
        # The fire time this success answered is at or before (success - offset): the next one
        # is strictly after it, so a rotation that ran exactly on time is not repeated.
        from rotator.cron import cron_trigger

        due = _next_fire(cron_trigger(schedule.cron), last_success - offset) + offset
    if last_failure is not None:
        due = max(due, last_failure + retry_delay)
    return next_window_start(schedule.window, due)


def _minutes(hhmm: str) -> timedelta:
    hours, _, minutes = hhmm.partition(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


def next_window_start(window: Window | None, at: datetime) -> datetime:
    """``at`` itself when a scheduled rotation may start then, else the window's next opening.

    A window opens on each of its days at ``start`` (UTC) and closes at ``end`` the same day, or
    the next day when ``end`` is not after ``start`` (a night window)."""
    if window is None:
        return at
    at = at.astimezone(UTC)
    start, end = _minutes(window.start), _minutes(window.end)
    length = end - start if end > start else end + timedelta(days=1) - start
    midnight = datetime(at.year, at.month, at.day, tzinfo=UTC)
    for offset in range(-1, 8):  # yesterday's night window may still be open
        day = midnight + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opens = day + start
        if opens <= at < opens + length:
            return at
        if opens > at:
            return opens
    raise ValueError("the window never opens")  # pragma: no cover - days is never empty


def consecutive_failures(statuses: Iterable[str]) -> int:
    """How many of a key's runs, newest first, failed or rolled back in a row."""
    count = 0
    for status in statuses:
        if status not in ("failed", "rolled_back"):
            break
        count += 1
    return count


def is_stuck(statuses: Iterable[str], max_attempts: int) -> bool:
    """``rotation.max_attempts`` consecutive failures: no automatic attempt until resumed."""
    return consecutive_failures(statuses) >= max_attempts


def period(schedule: Schedule, *, now: datetime) -> timedelta:
    """The longest gap between two rotations: the interval, or a cron line's widest spacing."""
    if schedule.interval is not None:
        return schedule.interval
    assert schedule.cron is not None
    from rotator.cron import cron_trigger

    trigger = cron_trigger(schedule.cron)
    fires = [_next_fire(trigger, now)]
    for _ in range(_CRON_LOOKAHEAD):
        fires.append(_next_fire(trigger, fires[-1]))
    return max(b - a for a, b in itertools.pairwise(fires))


def max_secret_age(schedule: Schedule, *, grace: timedelta, now: datetime) -> timedelta:
    """How old a secret may get before something is wrong: period + full jitter + grace."""
    return period(schedule, now=now) + schedule.jitter + grace


def may_start(
    api_key: str,
    *,
    primary: str,
    now: datetime,
    dues: Mapping[str, datetime],
    running: Collection[str],
) -> bool:
    """Whether a due key may start now, so subaccounts go before the primary when due together.

    Rotating the primary changes the credentials every subaccount rotation uses, so the primary
    waits for subaccounts that are running or were due no later than it, and a subaccount waits
    while the primary runs or has been due since before the subaccount was.
    """
    if api_key == primary:
        mine = dues.get(primary, now)
        if any(key != primary for key in running):
            return False
        return not any(key != primary and due <= mine for key, due in dues.items())
    if primary in running:
        return False
    primary_due = dues.get(primary)
    own = dues.get(api_key, now)
    return not (primary_due is not None and primary_due <= now and primary_due < own)


def run_order(keys: Iterable[str], *, primary: str, dues: Mapping[str, datetime]) -> list[str]:
    """Keys by due time, subaccounts before the primary (which runs last among due keys)."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(keys, key=lambda k: (k == primary, dues.get(k, far), k))


__all__ = [
    "consecutive_failures",
    "is_stuck",
    "jitter_offset",
    "max_secret_age",
    "may_start",
    "next_due",
    "next_window_start",
    "period",
    "run_order",
    "selected",
]
