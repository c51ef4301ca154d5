"""Each key's recent runs, kept in memory for the status page: a bounded ring per key, filled
as runs finish and once at start-up by ONE grouped query (never a query per key per request).
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rotator.audit import Run
from rotator.db import translate_errors
from rotator.models import AuditEventRow, RunRow
from rotator.snapshot import HourCount, RunMark, StepMark

RECENT_RUNS: Final = 12  # per key: 10,000 keys x 12 small records stay a few MB
MAX_STEPS: Final = 64  # the steps of one run the key page shows
WEEK_HOURS: Final = 7 * 24


def new_ring() -> deque[RunMark]:
    return deque(maxlen=RECENT_RUNS)


def remember(ring: deque[RunMark], run: Run) -> tuple[RunMark | None, RunMark | None]:
    """Add ``run`` to the ring, or update it in place when the ring has it (it finished);
    returns (the mark kept or None when too old to keep, the mark it replaced)."""
    mark = RunMark.of(run)
    for i in range(len(ring) - 1, -1, -1):
        if ring[i].run_id == mark.run_id:
            old, ring[i] = ring[i], mark
            return mark, old
    if ring and mark.started_at < ring[0].started_at and len(ring) == ring.maxlen:
        return None, None  # older than everything kept
    ring.append(mark)
    if len(ring) > 1 and ring[-2].started_at > mark.started_at:
        ordered = sorted(ring, key=lambda m: m.started_at)
        ring.clear()
        ring.extend(ordered)
    return mark, None


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


def recent_runs(engine: Engine, per_key: int = RECENT_RUNS) -> dict[str, list[Run]]:
    """Every key's newest ``per_key`` runs, oldest first, in one windowed query."""
    rank = (
        sa.func.row_number()
        .over(partition_by=RunRow.api_key, order_by=(RunRow.started_at.desc(), RunRow.id))
        .label("rank")
    )
    inner = sa.select(RunRow, rank).subquery()
    query = (
        sa.select(*[inner.c[c.key] for c in RunRow.__table__.columns])
        .where(inner.c.rank <= per_key)
        .order_by(inner.c.api_key, inner.c.started_at)
    )
    out: dict[str, list[Run]] = {}
    with translate_errors("read recent runs", engine), engine.connect() as conn:
        for row in conn.execute(query):
            run = Run.from_row(RunRow(**dict(row._mapping)))
            out.setdefault(run.api_key, []).append(run)
    return out


def run_steps(engine: Engine, run_id: str) -> tuple[StepMark, ...]:
    """The steps of one run (its audit events), for the key page; cached by the registry."""
    query = (
        sa.select(
            AuditEventRow.step,
            AuditEventRow.outcome,
            AuditEventRow.started_at,
            AuditEventRow.finished_at,
            AuditEventRow.request_id,
            AuditEventRow.error,
        )
        .where(AuditEventRow.run_id == run_id)
        .order_by(AuditEventRow.seq)
        .limit(MAX_STEPS)
    )
    with translate_errors("read a run's steps", engine), engine.connect() as conn:
        return tuple(
            StepMark(
                step=r.step,
                outcome=r.outcome,
                started_at=r.started_at,
                finished_at=r.finished_at,
                request_id=r.request_id,
                error=r.error,
            )
            for r in conn.execute(query)
        )


__all__ = [
    "MAX_STEPS",
    "RECENT_RUNS",
    "HourlyRuns",
    "hours_of",
    "new_ring",
    "recent_runs",
    "remember",
    "run_steps",
]
