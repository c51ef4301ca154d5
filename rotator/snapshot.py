"""What the daemon shows about itself: its lifecycle phase and a typed status snapshot.

The daemon builds a ``StatusSnapshot`` (datetimes, not text); ``rotator.httpserver`` renders it as
JSON or HTML. Frozen records: a snapshot is a picture of one moment, safe to hand to another thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rotator.audit import Run, RunStatus
from rotator.lease import LeaseInfo


class Phase(StrEnum):
    """The daemon's lifecycle: ready (``/readyz``) only while running."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.ROLLED_BACK})


@dataclass(frozen=True, kw_only=True)
class LeaseSummary:
    owner: str
    expires_at: datetime
    active: bool

    @classmethod
    def of(cls, info: LeaseInfo) -> LeaseSummary:
        return cls(owner=info.owner, expires_at=info.expires_at, active=info.active)


@dataclass(frozen=True, kw_only=True)
class KeyStatus:
    api_key: str
    name: str | None
    primary: bool
    secret_age: timedelta | None
    last_success: datetime | None
    next_due: datetime | None
    rotating_here: bool
    grace_until: datetime | None = None  # postponed: the previous secret's grace ends then
    last_run: Run | None
    lease: LeaseSummary | None
    error: str | None  # the last check's own error (database down...), if any

    @property
    def failing(self) -> bool:
        failed = self.last_run is not None and self.last_run.status in FAILED_STATUSES
        return failed or self.error is not None


@dataclass(frozen=True, kw_only=True)
class StatusSnapshot:
    version: str
    phase: Phase
    owner: str | None
    generated_at: datetime
    keys: tuple[KeyStatus, ...] = ()


__all__ = [
    "FAILED_STATUSES",
    "KeyStatus",
    "LeaseSummary",
    "Phase",
    "StatusSnapshot",
]
