"""Each key's recent runs, kept in memory for the status page: a bounded ring per key, filled
as runs finish and once at start-up by ONE grouped query (never a query per key per request).
"""

from __future__ import annotations

from collections import deque
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rotator.audit import Run
from rotator.db import translate_errors
from rotator.models import AuditEventRow, RunRow
from rotator.snapshot import RunMark, StepMark

RECENT_RUNS: Final = 12  # per key: 10,000 keys x 12 small records stay a few MB
MAX_STEPS: Final = 64  # the steps of one run the key page shows


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
            run = Run.from_row(row)
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
    "new_ring",
    "recent_runs",
    "remember",
    "run_steps",
]
