"""The audit log: runs (a summary derived from, and checked against, chained events) and audit
events (append-only, hash-chained per key).

Each event's ``hash`` is SHA-256 over its canonical content and the previous hash of its chain
(one chain per api key, "" for the rest), so an edited, deleted or reordered row breaks its chain
at that row. An appender locks only its chain's row of ``audit_heads`` (issue 12: sixteen workers
on sixteen keys never wait for each other; issue 11: no advisory lock any login could take).
``fold`` records every key's head in chain "", whose head is anchored in Vault (``rotator.anchor``)
so a rewritten or truncated log is caught by ``rotator.audit_verify``.
Nothing here ever holds a secret value: callers pass ids and fingerprints only.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from rotator import audit_chain
from rotator.audit_chain import canonical, event_hash
from rotator.audit_records import (
    ALERT_STEP,
    DISCOVERY_STEP,
    FOLD_STEP,
    GENESIS,
    GLOBAL_CHAIN,
    RUN_STEPS,
    UNSET,
    ChainReport,
    Event,
    EventFields,
    Head,
    Run,
    RunStatus,
    Trigger,
    Unset,
)
from rotator.clock import iso_or_none
from rotator.clock import utcnow as utcnow  # re-exported: older callers import it from here
from rotator.db import is_postgres, translate_errors
from rotator.errors import RotatorError, RunNotFoundError
from rotator.models import AuditEventRow, HeadRow, RunRow
from rotator.redact import scrub

if TYPE_CHECKING:
    from rotator.events.outbox import OutboxWriter

__all__ = [
    "ALERT_STEP",
    "DISCOVERY_STEP",
    "FOLD_STEP",
    "GENESIS",
    "GLOBAL_CHAIN",
    "RUN_STEPS",
    "UNSET",
    "AuditLog",
    "ChainReport",
    "Event",
    "EventFields",
    "Head",
    "Run",
    "RunStatus",
    "Trigger",
    "Unset",
    "canonical",
    "event_hash",
    "utcnow",
]


RECORD_BATCH: Final = 500  # events per transaction of record_many (SQLite's bind limit: 999)
_WRITTEN_MAX: Final = 4096
# The run statements every rotation makes, built once (a statement built per call costs more CPU
# than its round trip: SQLAlchemy keys its cache on the statement's whole structure).
_RUNS: Final = RunRow.__table__
_NEW_RUN: Final = sa.insert(_RUNS)
_RUN: Final = sa.select(_RUNS).where(_RUNS.c.id == sa.bindparam("run"))
_RUN_LOCKED: Final = _RUN.with_for_update()
_SET_RUN: Final = sa.update(_RUNS).where(_RUNS.c.id == sa.bindparam("run"))  # SET: given keys
_SET_RUN_RETURNING: Final = _SET_RUN.returning(*_RUNS.c)
_KEY_RUNS: Final = (
    sa.select(_RUNS)
    .where(_RUNS.c.api_key == sa.bindparam("key"), _RUNS.c.status == sa.bindparam("status"))
    .order_by(_RUNS.c.started_at, _RUNS.c.id)
)  # unfinished runs remembered (one per key being rotated, in practice)
_OPEN: Final = (RunStatus.RUNNING.value, RunStatus.AWAITING_REVOKE.value)
_KEY_OPEN_RUNS: Final = (
    sa.select(_RUNS)
    .where(_RUNS.c.api_key == sa.bindparam("key"), _RUNS.c.status.in_(_OPEN))
    .order_by(_RUNS.c.started_at, _RUNS.c.id)
)


class AuditLog:
    """Repository over the runs and audit events tables."""

    def __init__(
        self,
        engine: Engine,
        *,
        outbox: OutboxWriter | None = None,
        anchor: Callable[[Head], None] | None = None,
    ) -> None:
        self.engine = engine
        self.outbox = outbox  # consumer events, written in each append's transaction
        self.anchor = anchor  # keeps the global head outside the database (after every run)
        self._written: dict[str, Run] = {}  # unfinished runs as this process last wrote them
        self._anchoring = threading.Lock()  # one fold-and-anchor at a time in this process
        self._anchored_from = -math.inf  # when the newest anchored fold began (monotonic)

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        api_key: str,
        trigger: str,
        actor: str,
        owner: str,
        reason: str | None = None,
        emergency: bool = False,
        within: Callable[[Connection, str], None] | None = None,
    ) -> Run:
        """Record a new run (and its ``run.start`` event). ``within(conn, run_id)`` is called in
        the same transaction: the rotation names the run on the key's lease there, so a process
        fenced out of the lease meanwhile records no run at all (one transaction, not two)."""
        now = utcnow()
        row: dict[str, Any] = dict.fromkeys(_RUNS.c.keys())
        row.update(
            id=str(uuid.uuid4()),
            api_key=api_key,
            trigger=trigger,
            reason=reason,
            actor=actor,
            status=RunStatus.RUNNING.value,
            emergency=int(emergency),
            started_at=now,
            owner=owner,
        )
        with translate_errors("record the run start", self.engine), self.engine.begin() as conn:
            conn.execute(_NEW_RUN, row)
            self._append(
                conn,
                run_id=row["id"],
                api_key=api_key,
                step="run.start",
                outcome="ok",
                started_at=now,
                finished_at=now,
                actor=actor,
                detail={"trigger": trigger, "reason": reason, "emergency": emergency},
            )
            if within is not None:
                within(conn, row["id"])
        return self._remember(Run.from_values(row))

    def update_run(
        self,
        run_id: str,
        *,
        old_secret_id: str | Unset | None = UNSET,
        new_secret_id: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET,
    ) -> None:
        """Set the given fields of a run's summary; fields left out keep their value. Fields this
        process last wrote with the same values are not read again (nor written: no event)."""
        error = scrub(error) if isinstance(error, str) else error  # defence in depth (issue 11)
        given = {"old_secret_id": old_secret_id, "new_secret_id": new_secret_id, "error": error}
        wanted = self._changes(run_id, {k: v for k, v in given.items() if v is not UNSET})
        if not wanted:
            return  # nothing changes: no read, no write, no event
        with translate_errors("update the run", self.engine), self.engine.begin() as conn:
            run, update = self._update_run(conn, run_id, wanted)
            if update is not None:
                audit_chain.append(conn, self.outbox, **update)
        self._remember(run)

    def _changes(self, run_id: str, wanted: Mapping[str, Any]) -> dict[str, Any]:
        """``wanted``, or nothing when this process last wrote every one of those values."""
        known = self._written.get(run_id)
        if known is not None and all(getattr(known, k) == v for k, v in wanted.items()):
            return {}
        return dict(wanted)

    def _update_run(
        self, conn: Connection, run_id: str, wanted: Mapping[str, Any]
    ) -> tuple[Run, dict[str, Any] | None]:
        """Write ``wanted`` to the run's row (read and locked in ``conn``'s transaction): the
        run as written, and the ``run.update`` event to append in the same transaction (None
        when nothing changed). Every fact of a run is chained: ``audit verify`` derives the row
        from these events. The caller remembers the run once the transaction committed."""
        run = self._locked_run(conn, run_id)
        fields: dict[str, Any] = {k: v for k, v in wanted.items() if v != getattr(run, k)}
        if not fields:
            return run, None
        conn.execute(_SET_RUN, {"run": run_id, **fields})
        now = utcnow()
        update = {
            "run_id": run_id,
            "api_key": run.api_key,
            "step": "run.update",
            "outcome": "ok",
            "started_at": now,
            "finished_at": now,
            "actor": run.actor,
            "detail": fields,
        }
        return replace(run, **fields), update

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: str | None = None,
        actor: str | None = None,
        revoke_after: datetime | None = None,
        within: Callable[[Connection], None] | None = None,
    ) -> Run:
        """Record the run's end (or its new status). ``within(conn)`` is called in the same
        transaction (a rotation releases the key's lease there: one transaction, not two)."""
        error = scrub(error) if error else error  # defence in depth (issue 11)
        now = utcnow()
        after = revoke_after.astimezone(UTC) if revoke_after is not None else None
        values: dict[str, Any] = {"status": status.value, "error": error, "revoke_after": after}
        if status.terminal:
            values["finished_at"] = now
        with translate_errors("record the run end", self.engine), self.engine.begin() as conn:
            # the row as written (locked by the write: its writers take turns), in one statement
            row = conn.execute(_SET_RUN_RETURNING, {"run": run_id, **values}).first()
            if row is None:
                raise RunNotFoundError(f"no run {run_id} in the audit log")
            run = Run.from_row(row)
            self._append(
                conn,
                run_id=run_id,
                api_key=run.api_key,
                step="run.end" if status.terminal else "run.status",
                outcome=status.value,
                started_at=run.started_at,
                finished_at=now,
                actor=actor or run.actor,
                secret_id=run.new_secret_id,
                error=error,
                detail={
                    "old_secret_id": run.old_secret_id,
                    "new_secret_id": run.new_secret_id,
                    "revoke_after": iso_or_none(after),
                },
            )
            if within is not None:
                within(conn)
        self._written.pop(run_id, None)  # ended (or awaiting revoke, maybe elsewhere): read again
        self.anchor_head()
        finished = values.get("finished_at", run.finished_at)
        return replace(run, status=status, error=error, revoke_after=after, finished_at=finished)

    def _locked_run(self, conn: Connection, run_id: str) -> Run:
        """The run's row, locked for this transaction (its writers take turns)."""
        row = conn.execute(_RUN_LOCKED, {"run": run_id}).first()
        if row is None:
            raise RunNotFoundError(f"no run {run_id} in the audit log")
        return Run.from_row(row)

    def _remember(self, run: Run) -> Run:
        """Keep ``run`` as this process last wrote it, so ``update_run`` need not read it back.
        Only writes of this process move a run it holds the lease of (others are fenced out)."""
        if len(self._written) >= _WRITTEN_MAX:
            self._written.pop(next(iter(self._written)), None)  # the oldest: a run left behind
        self._written[run.id] = run
        return run

    def get_run(self, run_id: str) -> Run:
        with translate_errors("read the run", self.engine), self.engine.connect() as conn:
            row = conn.execute(_RUN, {"run": run_id}).first()
        if row is None:
            raise RunNotFoundError(f"no run {run_id} in the audit log")
        return Run.from_row(row)

    def find_run(self, prefix: str) -> Run | None:
        """A run by full id or unique prefix (operators type the first 8 characters)."""
        with translate_errors("find the run", self.engine), self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_RUNS).where(_RUNS.c.id.startswith(prefix, autoescape=True)).limit(2)
            ).all()
        return Run.from_row(rows[0]) if len(rows) == 1 else None

    def runs(
        self,
        *,
        api_key: str | None = None,
        statuses: list[RunStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[Run]:
        with translate_errors("list runs", self.engine), self.engine.connect() as conn:
            return self.runs_in(
                conn,
                api_key=api_key,
                statuses=statuses,
                since=since,
                until=until,
                limit=limit,
                newest_first=newest_first,
            )

    def runs_in(
        self,
        conn: Connection,
        *,
        api_key: str | None = None,
        statuses: list[RunStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[Run]:
        """``runs`` read in ``conn`` (with other reads, one checkout for them all)."""
        runs = _RUNS.c
        query = sa.select(_RUNS)
        if api_key is not None:
            query = query.where(runs.api_key == api_key)
        if statuses:
            query = query.where(runs.status.in_([s.value for s in statuses]))
        # Aware datetimes: the column type (UTCDateTime) stores UTC and refuses naive ones.
        if since is not None:
            query = query.where(runs.started_at >= since.astimezone(UTC))
        if until is not None:
            query = query.where(runs.started_at < until.astimezone(UTC))
        order = runs.started_at.desc() if newest_first else runs.started_at.asc()
        query = query.order_by(order, runs.id)
        if limit is not None:
            query = query.limit(limit)
        return [Run.from_row(r) for r in conn.execute(query).all()]

    def unfinished_runs(self, api_key: str | None = None) -> list[Run]:
        """Runs a crash left ``running`` (oldest first): they must be resumed before new ones."""
        return self._open_runs(RunStatus.RUNNING, api_key)

    def awaiting_revoke(self, api_key: str | None = None) -> list[Run]:
        return self._open_runs(RunStatus.AWAITING_REVOKE, api_key)

    def open_runs(self, api_key: str, *, conn: Connection | None = None) -> list[Run]:
        """The key's runs still running or awaiting revocation, oldest first: what a rotation
        asks before it starts, in one query (``unfinished_runs`` and ``awaiting_revoke``);
        ``conn``: read there (the transaction that took the key's lease)."""
        if conn is not None:
            return [Run.from_row(r) for r in conn.execute(_KEY_OPEN_RUNS, {"key": api_key})]
        with translate_errors("list runs", self.engine), self.engine.connect() as c:
            return self.open_runs(api_key, conn=c)

    def _open_runs(self, status: RunStatus, api_key: str | None) -> list[Run]:
        """A key's runs in ``status``, oldest first (every rotation asks: one cached query)."""
        if api_key is None:
            return self.runs(statuses=[status], newest_first=False)
        params = {"key": api_key, "status": status.value}
        with translate_errors("list runs", self.engine), self.engine.connect() as conn:
            return [Run.from_row(r) for r in conn.execute(_KEY_RUNS, params).all()]

    def keys_changed(self, after_seq: int) -> tuple[set[str], int]:
        """API keys with events after the cursor ``after_seq``, and the next cursor: what a poller
        has not seen yet. SQLite serializes appends, so seq order is commit order there. On
        PostgreSQL keys append concurrently, so the cursor is the oldest transaction still open
        (its snapshot's xmin) and each key's head row carries the transaction that moved it."""
        if not is_postgres(self.engine):
            query = (
                sa.select(AuditEventRow.api_key, sa.func.max(AuditEventRow.seq))
                .where(AuditEventRow.seq > after_seq)
                .group_by(AuditEventRow.api_key)
            )
            with (
                translate_errors("read recent audit events", self.engine),
                self.engine.connect() as c,
            ):
                rows = c.execute(query).all()
            return {r[0] for r in rows if r[0]}, max((r[1] for r in rows), default=after_seq)
        xmin = sa.text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        changed = sa.select(HeadRow.chain).where(HeadRow.txid >= after_seq)
        with translate_errors("read recent audit events", self.engine), self.engine.connect() as c:
            cursor = int(c.execute(xmin).scalar_one())  # before the read: nothing slips between
            keys = {row[0] for row in c.execute(changed) if row[0]}
        return keys, cursor

    def last_success(self, api_key: str) -> datetime | None:
        """When ``api_key`` last got a new current secret (a run whose newest status is a success
        or awaiting revoke), from the chained events: an edited run row cannot move a schedule."""
        e = AuditEventRow
        newest = (
            sa.select(sa.func.max(e.seq))
            .where(e.api_key == api_key, e.step.in_(["run.status", "run.end"]))
            .group_by(e.run_id)
        )
        good = [RunStatus.SUCCEEDED.value, RunStatus.AWAITING_REVOKE.value]
        runs = sa.select(e.run_id).where(e.seq.in_(newest), e.outcome.in_(good))
        query = sa.select(sa.func.max(e.started_at)).where(
            e.api_key == api_key, e.step == "run.start", e.run_id.in_(runs)
        )
        with translate_errors("read the last success", self.engine), self.engine.connect() as c:
            value = c.execute(query).scalar()
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if isinstance(value, datetime) else None

    def key_histories(self) -> dict[str, tuple[datetime | None, Run | None]]:
        """Every key's last success and newest run, in two grouped queries (the daemon's
        start-up and full refresh: two queries per key cost ~20 s for 10,000 keys)."""
        ok = [RunStatus.SUCCEEDED.value, RunStatus.AWAITING_REVOKE.value]
        successes = (
            sa.select(RunRow.api_key, sa.func.max(RunRow.started_at))
            .where(RunRow.status.in_(ok))
            .group_by(RunRow.api_key)
        )
        rank = (
            sa.func.row_number()
            .over(partition_by=RunRow.api_key, order_by=(RunRow.started_at.desc(), RunRow.id))
            .label("rank")
        )
        ranked = sa.select(RunRow, rank).subquery()
        columns = [ranked.c[col.name].label(col.key) for col in RunRow.__table__.columns]
        newest = sa.select(*columns).where(ranked.c.rank == 1)
        with translate_errors("read every key's history", self.engine), self.engine.connect() as c:
            last = {key: value for key, value in c.execute(successes).all()}
            runs = [Run.from_row(r) for r in c.execute(newest).all()]
        facts: dict[str, tuple[datetime | None, Run | None]] = {
            key: (value.replace(tzinfo=UTC) if isinstance(value, datetime) else None, None)
            for key, value in last.items()
        }
        for run in runs:
            facts[run.api_key] = (facts.get(run.api_key, (None, None))[0], run)
        return facts

    def last_alert(self, kind: str, api_key: str) -> datetime | None:
        """When an alert of ``kind`` about ``api_key`` was last sent (notify's dedup memory)."""
        query = (
            sa.select(AuditEventRow.started_at)
            .where(
                AuditEventRow.step == ALERT_STEP,
                AuditEventRow.outcome == kind,
                AuditEventRow.api_key == api_key,
            )
            .order_by(AuditEventRow.seq.desc())
            .limit(1)
        )
        with translate_errors("read the last alert", self.engine), self.engine.connect() as c:
            value: datetime | None = c.execute(query).scalar()
        return value

    def discovered_keys(self) -> set[str]:
        """Keys whose newest discovery event says ``added``: the managed set last recorded."""
        newest = (
            sa.select(sa.func.max(AuditEventRow.seq))
            .where(AuditEventRow.step == DISCOVERY_STEP)
            .group_by(AuditEventRow.api_key)
        )
        query = sa.select(AuditEventRow.api_key).where(
            AuditEventRow.seq.in_(newest), AuditEventRow.outcome == "added"
        )
        with translate_errors("read discovery events", self.engine), self.engine.connect() as c:
            return {row[0] for row in c.execute(query) if row[0]}

    # -- events ----------------------------------------------------------------------------

    def record(
        self,
        *,
        step: str,
        outcome: str,
        started_at: datetime,
        run_id: str | None = None,
        api_key: str | None = None,
        finished_at: datetime | None = None,
        actor: str | None = None,
        secret_id: str | None = None,
        request_id: str | None = None,
        vault_version: int | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
        run_changes: Mapping[str, str | None] | None = None,
    ) -> Event:
        """Append one event. ``run_changes``: fields of run ``run_id``'s summary (its secret
        ids) that a rotation step learnt, written with the step's event in one transaction, as
        ``update_run`` would (a ``run.update`` event before it), not in one of their own."""
        entry = EventFields(
            step=step,
            outcome=outcome,
            started_at=started_at,
            run_id=run_id,
            api_key=api_key,
            finished_at=finished_at,
            actor=actor,
            secret_id=secret_id,
            request_id=request_id,
            vault_version=vault_version,
            error=error,
            detail=detail,
        )
        changes = self._changes(run_id, run_changes) if run_id and run_changes else {}
        run: Run | None = None
        with translate_errors(f"record step {step}", self.engine), self.engine.begin() as conn:
            batch = [_fields(entry)]
            if changes:
                assert run_id is not None
                run, update = self._update_run(conn, run_id, changes)
                batch = batch if update is None else [update, *batch]
            event = audit_chain.append_many(conn, self.outbox, batch)[-1]
        if run is not None:
            self._remember(run)
        return event

    def record_many(self, entries: Sequence[EventFields]) -> list[Event]:
        """``record`` for many events (the daemon's discovery of 10,000 keys): the very rows one
        ``record`` each would write, ``RECORD_BATCH`` per transaction, each transaction taking
        each chain's head lock once (``audit_chain.append_many``)."""
        events: list[Event] = []
        for start in range(0, len(entries), RECORD_BATCH):
            chunk = [_fields(entry) for entry in entries[start : start + RECORD_BATCH]]
            with translate_errors("record audit events", self.engine), self.engine.begin() as c:
                events += audit_chain.append_many(c, self.outbox, chunk)
        return events

    def events(
        self, *, run_id: str | None = None, api_key: str | None = None, limit: int | None = None
    ) -> list[Event]:
        query = sa.select(AuditEventRow).order_by(AuditEventRow.seq)
        if run_id is not None:
            query = query.where(AuditEventRow.run_id == run_id)
        if api_key is not None:
            query = query.where(AuditEventRow.api_key == api_key)
        if limit is not None:
            query = query.limit(limit)
        with translate_errors("read audit events", self.engine), self.engine.connect() as conn:
            return [Event.from_row(r) for r in conn.execute(query).all()]

    def verify_chain(
        self, *, anchor: Head | None = None, expect_head: str | None = None
    ) -> ChainReport:
        """Recompute every chain, the folds, the heads and every run row (``audit_verify``)."""
        from rotator.audit_verify import verify

        with translate_errors("verify the audit chain", self.engine), self.engine.connect() as c:
            return verify(c, anchor=anchor, expect_head=expect_head)

    def head(self) -> Head:
        """The end of chain "" (events about no key and the folds)."""
        with translate_errors("read the audit head", self.engine), self.engine.connect() as c:
            return audit_chain.global_head(c)

    def fold(self) -> Head:
        """Record in chain "" the head of every key's chain that moved since the last fold, so
        the global head (anchored outside the database) covers every event written so far."""
        with translate_errors("fold the audit chains", self.engine), self.engine.begin() as conn:
            return audit_chain.fold(conn, self.outbox)

    def anchor_head(self) -> None:
        """Fold and hand the head to the anchor (Vault), if one is set; never raises: a run's
        outcome stands even when Vault is away, and the daemon's timer anchors again.

        Runs that end together share one fold: a caller that waited while another thread
        folded *after* it asked (so after its events committed) and anchored is covered."""
        if self.anchor is None:
            return
        asked = time.monotonic()
        with self._anchoring:
            if self._anchored_from > asked:
                return  # a fold begun after this call's events committed is anchored
            began = time.monotonic()
            try:
                self.anchor(self.fold())
            except RotatorError as exc:
                structlog.get_logger(__name__).warning("audit_anchor_failed", error=str(exc))
                return
            self._anchored_from = began

    def _append(self, conn: Connection, **fields: Any) -> Event:
        return audit_chain.append(conn, self.outbox, **fields)


def _fields(entry: EventFields) -> dict[str, Any]:
    """An event's fields as appended: error scrubbed (defence in depth, issue 11), finished now
    unless said otherwise."""
    fields: dict[str, Any] = dict(entry)
    if fields.get("error"):
        fields["error"] = scrub(fields["error"])
    fields["finished_at"] = fields.get("finished_at") or utcnow()
    return fields
