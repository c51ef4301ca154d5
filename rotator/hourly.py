"""The fleet's runs per hour over the last 7 days, counted as runs are remembered (the status
page's "rotations per hour" picture). Pure; the daemon's registry holds one under its lock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from rotator.snapshot import HourCount, RunMark

WEEK_HOURS: Final = 7 * 24


class HourlyRuns:
    """The fleet's runs per hour, counted as marks enter the rings (not recounted per request:
    10,000 keys' rings are too many to walk for every page). Not thread-safe: the registry's
    lock guards it."""

    def __init__(self) -> None:
        self._hours: dict[int, list[int]] = {}  # hour number since the epoch -> [runs, failed]

    def count(self, new: RunMark | None, old: RunMark | None) -> None:
        if old is not None:
            self._add(old, -1)
        if new is not None:
            self._add(new, 1)

    def _add(self, mark: RunMark, sign: int) -> None:
        slot = self._hours.setdefault(int(mark.started_at.timestamp() // 3600), [0, 0])
        slot[0] += sign
        slot[1] += sign if mark.failed else 0

    def window(self, now: datetime) -> tuple[HourCount, ...]:
        """The last 7 days, one entry per hour (oldest first); older hours are dropped."""
        last = int(now.timestamp() // 3600)
        first = last - WEEK_HOURS + 1
        for hour in [h for h in self._hours if h < first - 24]:
            del self._hours[hour]
        empty = [0, 0]
        return tuple(
            HourCount(
                hour=datetime.fromtimestamp(h * 3600, UTC),
                runs=self._hours.get(h, empty)[0],
                failed=self._hours.get(h, empty)[1],
            )
            for h in range(first, last + 1)
        )


def hours_of(marks: list[RunMark], now: datetime) -> tuple[HourCount, ...]:
    """``HourlyRuns`` over a list of marks (synthetic snapshots, tests)."""
    hours = HourlyRuns()
    for mark in marks:
        hours.count(mark, None)
    return hours.window(now)


__all__ = ["WEEK_HOURS", "HourlyRuns", "hours_of"]
