"""Holds on keys, in the database so every replica honours them: operator pauses (``rotator
pause``, one key or ``*`` for all) and the stuck rule (``rotation.max_attempts`` consecutive
failed or rolled-back runs since the key's last ``rotator resume``).

Read at decision time, never cached: a pause set on one host stops the next scheduled rotation
on every other. Every change is an audit event (steps ``pause`` and ``resume``). Emergencies
ignore holds (they say so); scheduled and plain manual rotations obey them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rotator.audit import AuditLog, Run, RunStatus
from rotator.clock import iso, iso_or_none, utcnow
from rotator.db import translate_errors
from rotator.models import KeyHoldRow
from rotator.scheduling import consecutive_failures

ALL = "*"  # the hold row that applies to every key


@dataclass(frozen=True, kw_only=True)
class Pause:
    api_key: str  # or ALL
    until: datetime | None  # None: until resumed
    reason: str | None
    actor: str | None
    since: datetime

    def active(self, now: datetime) -> bool:
        return self.until is None or self.until > now

    def describe(self) -> str:
        scope = "every key" if self.api_key == ALL else self.api_key
        until = f"until {iso(self.until)}" if self.until else "until resumed"
        return f"{scope} paused {until} by {self.actor or '?'}: {self.reason or 'no reason'}"

    def to_json(self) -> dict[str, object]:
        return {
            "scope": self.api_key,
            "until": iso_or_none(self.until),
            "reason": self.reason,
            "actor": self.actor,
            "since": iso(self.since),
        }


class Holds:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit

    def pause(
        self, api_key: str | None, *, until: datetime | None, reason: str, actor: str
    ) -> Pause:
        """Pause one key (``None``: every key) until ``until``; audited."""
        scope = api_key or ALL
        now = utcnow()
        values = {"paused": 1, "paused_until": until, "reason": reason, "actor": actor}
        with translate_errors("record the pause", self._engine), self._engine.begin() as conn:
            _upsert(conn, scope, now, values)
        self._audit.record(
            step="pause",
            outcome="paused",
            started_at=now,
            api_key=api_key,
            actor=actor,
            detail={"scope": scope, "until": iso_or_none(until), "reason": reason},
        )
        return Pause(api_key=scope, until=until, reason=reason, actor=actor, since=now)

    def resume(self, api_key: str | None, *, actor: str, reason: str | None = None) -> None:
        """End the pause and clear the failure count of one key (``None``: of every key)."""
        now = utcnow()
        values = {"paused": 0, "paused_until": None, "cleared_at": now}
        with translate_errors("record the resume", self._engine), self._engine.begin() as conn:
            if api_key is None:
                conn.execute(sa.update(KeyHoldRow).values(changed_at=now, **values))
            _upsert(conn, api_key or ALL, now, values)
        self._audit.record(
            step="resume",
            outcome="resumed",
            started_at=now,
            api_key=api_key,
            actor=actor,
            detail={"scope": api_key or ALL, "reason": reason},
        )

    def pause_for(self, api_key: str, now: datetime) -> Pause | None:
        """The pause that holds ``api_key`` now (its own, or the one on every key), if any."""
        return _holding(self._rows([api_key, ALL]), now)

    def check(self, api_key: str, now: datetime, max_attempts: int) -> tuple[Pause | None, int]:
        """``pause_for`` and ``failures`` read in one connection (the daemon asks both before
        every scheduled rotation: one checkout instead of three)."""
        with translate_errors("read the key's holds", self._engine), self._engine.connect() as c:
            pause = _holding(_pauses(c, [api_key, ALL]), now)
            since = c.execute(_CLEARED_AT, {"key": api_key}).scalar()
            runs = self._audit.runs_in(
                c,
                api_key=api_key,
                since=since if isinstance(since, datetime) else None,
                limit=max_attempts,
            )
        return pause, _consecutive(runs)

    def active_pauses(self, now: datetime) -> dict[str, Pause]:
        """Every pause in force now, by scope (API key or ``*``)."""
        return {k: p for k, p in self._rows(None).items() if p.active(now)}

    def cleared_at(self, api_key: str) -> datetime | None:
        with translate_errors("read the key's holds", self._engine), self._engine.connect() as c:
            value = c.execute(_CLEARED_AT, {"key": api_key}).scalar()
        return value if isinstance(value, datetime) else None

    def failures(self, api_key: str, max_attempts: int) -> int:
        """Consecutive failed or rolled-back runs since the key was last resumed (at most
        ``max_attempts``: that many is enough to call it stuck)."""
        runs = self._audit.runs(api_key=api_key, since=self.cleared_at(api_key), limit=max_attempts)
        return _consecutive(runs)

    def _rows(self, keys: list[str] | None) -> dict[str, Pause]:
        with translate_errors("read the key's holds", self._engine), self._engine.connect() as c:
            return _pauses(c, keys)


_CLEARED_AT = sa.select(sa.func.max(KeyHoldRow.cleared_at)).where(
    KeyHoldRow.api_key.in_([sa.bindparam("key"), ALL])
)


def _pauses(conn: Connection, keys: list[str] | None) -> dict[str, Pause]:
    query = sa.select(KeyHoldRow).where(KeyHoldRow.paused == 1)
    if keys is not None:
        query = query.where(KeyHoldRow.api_key.in_(keys))
    return {
        r.api_key: Pause(
            api_key=r.api_key,
            until=_aware(r.paused_until),
            reason=r.reason,
            actor=r.actor,
            since=_aware(r.changed_at) or utcnow(),
        )
        for r in conn.execute(query).all()
    }


def _holding(pauses: dict[str, Pause], now: datetime) -> Pause | None:
    """Of a key's own pause and the one on every key, the one that holds it now (its own
    first)."""
    active = [p for p in pauses.values() if p.active(now)]
    return min(active, key=lambda p: p.api_key == ALL) if active else None


def _consecutive(runs: list[Run]) -> int:
    return consecutive_failures(str(r.status) for r in runs if r.status != RunStatus.RUNNING)


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _upsert(conn: Connection, scope: str, now: datetime, values: Mapping[str, object]) -> None:
    done = conn.execute(
        sa.update(KeyHoldRow).where(KeyHoldRow.api_key == scope).values(changed_at=now, **values)
    )
    if done.rowcount == 0:
        row = {"api_key": scope, "changed_at": now, "paused": 0, **values}
        conn.execute(sa.insert(KeyHoldRow).values(**row))


__all__ = ["ALL", "Holds", "Pause"]
