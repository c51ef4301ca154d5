"""The outbox table: events written with the audit event they report, claimed and marked by
deliverers.

At least once, in order, by any number of replicas: a deliverer claims an endpoint's *oldest*
pending row only, with a lease (``claimed_until``) longer than one HTTP attempt, so nobody sends
a claimed row or anything after it until the claim is settled or has expired. PostgreSQL claims
with ``FOR UPDATE SKIP LOCKED``; SQLite (writes serialized by BEGIN IMMEDIATE) with a
conditional UPDATE. A row is settled only by the claim that holds it (``claimed_by``).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rotator.clock import iso, iso_or_none, utcnow
from rotator.db import is_postgres, translate_errors
from rotator.events import signing
from rotator.events.mapping import AuditFacts, RunFacts, consumer_events
from rotator.events.types import ALL_TYPES, EventType
from rotator.models import OutboxRow, RunRow

if TYPE_CHECKING:
    from rotator.audit import Event

PENDING = "pending"
DELIVERED = "delivered"


@dataclass(frozen=True)
class Route:
    """An endpoint's name and the event types it receives (what enqueueing needs: no secret)."""

    endpoint: str
    types: frozenset[EventType] = ALL_TYPES


class OutboxWriter:
    """The audit log's hook: turns each appended audit event into outbox rows, on the same
    connection, so they commit or roll back with it."""

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        vault_path: Callable[[str], str] | None = None,
        grace_for: Callable[[str], timedelta] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self._vault_path = vault_path
        self._grace_for = grace_for

    def write(self, conn: Connection, event: Event) -> list[int]:
        """Insert the rows ``event`` means for every route that wants them; their ids."""
        facts = AuditFacts(
            seq=event.seq,
            step=event.step,
            outcome=event.outcome,
            run_id=event.run_id,
            api_key=event.api_key,
            secret_id=event.secret_id,
            vault_version=event.vault_version,
            finished_at=event.finished_at,
            error=event.error,
            detail=event.detail,
        )
        if not self.routes or not consumer_events(facts, None):
            return []  # cheap: most audit events report nothing to consumers
        run = _run_facts(conn, event.run_id)
        key = event.api_key
        found = consumer_events(
            facts,
            run,
            vault_path=self._vault_path(key) if key and self._vault_path else None,
            grace=self._grace_for(key) if key and self._grace_for else None,
        )
        return [
            enqueue(conn, r.endpoint, kind, data, at=event.finished_at, audit=facts)
            for kind, data in found
            for r in self.routes
            if kind in r.types
        ]


def _run_facts(conn: Connection, run_id: str | None) -> RunFacts | None:
    if run_id is None:
        return None
    row = conn.execute(
        sa.select(
            RunRow.trigger,
            RunRow.emergency,
            RunRow.old_secret_id,
            RunRow.new_secret_id,
            RunRow.started_at,
        ).where(RunRow.id == run_id)
    ).first()
    if row is None:
        return None
    return RunFacts(
        trigger=row.trigger,
        emergency=bool(row.emergency),
        old_secret_id=row.old_secret_id,
        new_secret_id=row.new_secret_id,
        started_at=row.started_at,
    )


def enqueue(
    conn: Connection,
    endpoint: str,
    kind: EventType,
    data: dict[str, Any],
    *,
    at: datetime,
    audit: AuditFacts | None = None,
) -> int:
    """One pending row; due at once. Its body is fixed now, so every retry sends the same."""
    values = {
        "message_id": f"msg_{uuid.uuid4().hex}",
        "endpoint": endpoint,
        "event_type": str(kind),
        "api_key": audit.api_key if audit else data.get("api_key"),
        "run_id": audit.run_id if audit else data.get("run_id"),
        "audit_seq": audit.seq if audit else None,
        "payload": signing.body(str(kind), at, data),
        "status": PENDING,
        "created_at": at,
        "next_attempt_at": at,
        "attempts": 0,
    }
    result = conn.execute(sa.insert(OutboxRow).values(**values).returning(OutboxRow.id))
    return int(result.scalar_one())


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """A row as a deliverer or an operator sees it (``payload`` holds no secret)."""

    id: int
    message_id: str
    endpoint: str
    event_type: str
    api_key: str | None
    run_id: str | None
    payload: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "endpoint": self.endpoint,
            "type": self.event_type,
            "api_key": self.api_key,
            "run_id": self.run_id,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "last_error": self.last_error,
            "delivered_at": iso_or_none(self.delivered_at),
            "data": json.loads(self.payload).get("data"),
        }


def _delivery(row: Any) -> Delivery:
    m = row._mapping
    return Delivery(**{f: m[f] for f in Delivery.__dataclass_fields__})


@dataclass(frozen=True)
class Backoff:
    """Exponential with full jitter in [delay/2, delay], capped: replicas and retries spread out."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        raw = self.base.total_seconds() * 2 ** min(max(attempts - 1, 0), 32)
        limit = min(raw, self.cap.total_seconds())
        return timedelta(seconds=rng.uniform(limit / 2, limit))


class Outbox:
    """Claim, settle and list outbox rows."""

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.owner = owner or f"deliverer-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.backoff = backoff
        self._rng = rng or random.Random()  # nosec B311  # noqa: S311 - jitter only

    def claim(self, endpoints: Iterable[str], lease: timedelta, limit: int = 50) -> list[Delivery]:
        """The oldest pending row of each endpoint that is due and unclaimed, now claimed by us."""
        names = sorted(set(endpoints))
        if not names:
            return []
        now = self.clock()
        with translate_errors("claim event deliveries", self.engine), self.engine.begin() as c:
            ids = self._candidates(c, names, now, limit)
            claimed = []
            for row_id in ids:
                won = c.execute(
                    sa.update(OutboxRow)
                    .where(OutboxRow.id == row_id, OutboxRow.status == PENDING, _unclaimed(now))
                    .values(claimed_by=self.owner, claimed_until=now + lease)
                )
                if won.rowcount == 1:
                    claimed.append(row_id)
            if not claimed:
                return []
            rows = c.execute(
                sa.select(OutboxRow).where(OutboxRow.id.in_(claimed)).order_by(OutboxRow.id)
            ).all()
        return [_delivery(r) for r in rows]

    def _candidates(self, c: Connection, names: list[str], now: datetime, limit: int) -> list[int]:
        earlier = OutboxRow.__table__.alias()
        blocked = (
            sa.select(earlier.c.id)
            .where(
                earlier.c.endpoint == OutboxRow.endpoint,
                earlier.c.status == PENDING,
                earlier.c.id < OutboxRow.id,
            )
            .exists()
        )
        query = (
            sa.select(OutboxRow.id)
            .where(
                OutboxRow.endpoint.in_(names),
                OutboxRow.status == PENDING,
                OutboxRow.next_attempt_at <= now,
                _unclaimed(now),
                ~blocked,
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        if is_postgres(self.engine):
            query = query.with_for_update(skip_locked=True, of=OutboxRow)
        return [r[0] for r in c.execute(query).all()]

    def delivered(self, delivery: Delivery) -> bool:
        """Settle a sent row; False when our claim had expired and somebody else holds it."""
        now = self.clock()
        return self._settle(
            delivery,
            status=DELIVERED,
            delivered_at=now,
            attempts=delivery.attempts + 1,
            last_error=None,
        )

    def failed(self, delivery: Delivery, error: str) -> bool:
        """Settle a failed attempt: due again after the backoff, still first in its line."""
        attempts = delivery.attempts + 1
        due = self.clock() + self.backoff.delay(attempts, self._rng)
        return self._settle(delivery, attempts=attempts, next_attempt_at=due, last_error=error)

    def _settle(self, delivery: Delivery, **values: Any) -> bool:
        with translate_errors("record an event delivery", self.engine), self.engine.begin() as c:
            result = c.execute(
                sa.update(OutboxRow)
                .where(
                    OutboxRow.id == delivery.id,
                    OutboxRow.claimed_by == self.owner,
                    OutboxRow.status == PENDING,
                )
                .values(claimed_by=None, claimed_until=None, **values)
            )
        return result.rowcount == 1

    def list(
        self, *, failed_only: bool = False, include_delivered: bool = False, limit: int = 100
    ) -> list[Delivery]:
        """Undelivered rows, oldest first (``failed_only``: those with a failed attempt)."""
        query = sa.select(OutboxRow).order_by(OutboxRow.id).limit(limit)
        if not include_delivered:
            query = query.where(OutboxRow.status == PENDING)
        if failed_only:
            query = query.where(OutboxRow.attempts > 0, OutboxRow.status == PENDING)
        with translate_errors("list event deliveries", self.engine), self.engine.connect() as c:
            return [_delivery(r) for r in c.execute(query).all()]

    def purge_delivered(self, older_than: timedelta, batch: int = 1000) -> int:
        """Delete rows delivered more than ``older_than`` ago (never a pending one), ``batch``
        at a time so no transaction holds the table long; how many went."""
        cutoff = self.clock() - older_than
        old = (
            sa.select(OutboxRow.id)
            .where(OutboxRow.status == DELIVERED, OutboxRow.delivered_at < cutoff)
            .order_by(OutboxRow.id)
            .limit(batch)
        )
        purged = 0
        while True:
            with translate_errors("purge delivered events", self.engine), self.engine.begin() as c:
                ids = [r[0] for r in c.execute(old).all()]
                if ids:
                    c.execute(sa.delete(OutboxRow).where(OutboxRow.id.in_(ids)))
            purged += len(ids)
            if len(ids) < batch:
                return purged

    def pending_count(self) -> int:
        query = sa.select(sa.func.count()).select_from(OutboxRow)
        with translate_errors("count event deliveries", self.engine), self.engine.connect() as c:
            return int(c.execute(query.where(OutboxRow.status == PENDING)).scalar_one())


def _unclaimed(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now)


__all__ = [
    "DELIVERED",
    "PENDING",
    "Backoff",
    "Delivery",
    "Outbox",
    "OutboxWriter",
    "Route",
    "enqueue",
]
