"""What the daemon shows about itself: its lifecycle phase and a typed status snapshot.

The daemon builds a ``StatusSnapshot`` (datetimes, not text); ``rotator.statuspage`` renders it as
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


@dataclass(frozen=True, kw_only=True, slots=True)
class RunMark:
    """One run as the status page's history shows it: small, so 10,000 keys' rings stay cheap."""

    run_id: str
    status: RunStatus
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, run: Run) -> RunMark:
        return cls(
            run_id=run.id,
            status=run.status,
            trigger=run.trigger,
            started_at=run.started_at,
            finished_at=run.finished_at,
            error=run.error,
        )

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True, kw_only=True, slots=True)
class StepMark:
    """One step of a run (an audit event) on the key's page: ids only, never a value."""

    step: str
    outcome: str
    started_at: datetime
    finished_at: datetime
    request_id: str | None
    error: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class HourCount:
    """Runs the fleet started in one hour, and how many of them failed."""

    hour: datetime
    runs: int
    failed: int


@dataclass(frozen=True, kw_only=True)
class KeyStatus:
    api_key: str
    name: str | None
    primary: bool
    secret_age: timedelta | None
    last_success: datetime | None
    next_due: datetime | None
    rotating_here: bool
    postponed_until: datetime | None = None  # a refused rotation waits for a grace to end
    last_run: Run | None
    lease: LeaseSummary | None
    error: str | None  # the last check's own error (database down...), if any
    paused: str | None = None  # the pause holding the key (``rotator pause``), described
    stuck: bool = False  # rotation.max_attempts failures in a row: needs ``rotator resume``
    interval: timedelta | None = None  # the schedule's period: what the secret age is held to
    recent: tuple[RunMark, ...] = ()  # the newest runs, oldest first (the daemon's ring)

    @property
    def grace_until(self) -> datetime | None:
        """When the old secret is revoked, while it still works (a run awaiting revoke), or
        until when the daemon postponed the key's rotation for a grace period."""
        run = self.last_run
        awaiting = None
        if run is not None and run.status == RunStatus.AWAITING_REVOKE:
            awaiting = run.revoke_after
        return max((m for m in (awaiting, self.postponed_until) if m is not None), default=None)

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
    # keys that cannot be handled (an invalid listed key, an internal error): skipped, shown
    # here as (sanitised key, why); every other key keeps rotating
    quarantined: tuple[tuple[str, str], ...] = ()
    hours: tuple[HourCount, ...] | None = None  # the last 7 days, oldest first (None: not kept)


__all__ = [
    "FAILED_STATUSES",
    "HourCount",
    "KeyStatus",
    "LeaseSummary",
    "Phase",
    "RunMark",
    "StatusSnapshot",
    "StepMark",
]
