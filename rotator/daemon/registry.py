"""The daemon's key registry: which keys it manages, what it knows of each, which rotate here.

One lock guards it all; every method takes it briefly and never calls out while holding it, so
jobs, housekeeping and the status page can read it from any thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.audit import Run
from rotator.daemon.history import new_ring, remember
from rotator.discovery import Account
from rotator.hourly import HourlyRuns
from rotator.lease import LeaseInfo
from rotator.snapshot import HourCount, KeyStatus, LeaseSummary, RunMark, StepMark

AllowedCheck = Callable[[dict[str, datetime], set[str]], bool]  # (dues, running) -> may start
IntervalOf = Callable[[str], timedelta | None]  # a key's schedule period, for the status page


@dataclass
class KeyState:
    """What the daemon knows about one managed key (refreshed from the audit log)."""

    account: Account
    first_seen: datetime
    due: datetime | None = None
    last_success: datetime | None = None
    last_run: Run | None = None
    secret_since: datetime | None = None  # last success, else Vault's rotated_at
    grace_until: datetime | None = None  # the previous secret's grace period ends then
    error: str | None = None  # the last check's own error (database down...), if any
    recent: deque[RunMark] = field(default_factory=new_ring)  # the status page's history
    steps: tuple[str, tuple[StepMark, ...]] | None = None  # (run id, its steps), read once
    paused: str | None = None  # the pause holding it, as last seen at its check
    stuck: bool = False


@dataclass(frozen=True, kw_only=True)
class Facts:
    """One refresh of a key's schedule facts, applied at once."""

    due: datetime | None
    last_success: datetime | None
    last_run: Run | None
    secret_since: datetime | None
    grace_until: datetime | None = None


class KeyRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, KeyState] = {}
        self._running: set[str] = set()
        self._key_locks: dict[str, threading.Lock] = {}
        self._quarantine: dict[str, str] = {}  # sanitised key -> why it is skipped
        self._hours = HourlyRuns()  # the fleet's runs per hour, fed with the rings

    # -- the managed set --------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    def first_seen(self, key: str) -> datetime | None:
        """When this process first managed ``key``; None when it no longer does."""
        with self._lock:
            state = self._keys.get(key)
            return state.first_seen if state else None

    def secret_since(self, key: str) -> datetime | None:
        with self._lock:
            state = self._keys.get(key)
            return state.secret_since if state else None

    def replace(self, accounts: list[Account], now: datetime) -> tuple[list[str], list[str]]:
        """Manage exactly ``accounts``; returns the keys (gone, new)."""
        wanted = {a.api_key: a for a in accounts}
        with self._lock:
            gone = [k for k in self._keys if k not in wanted]
            new = [k for k in wanted if k not in self._keys]
            for key in gone:
                del self._keys[key]
            for key in new:
                self._keys[key] = KeyState(account=wanted[key], first_seen=now)
            for key, account in wanted.items():
                self._keys[key].account = account
        return gone, new

    # -- per-key facts ----------------------------------------------------------------------

    def due(self, key: str) -> datetime | None:
        with self._lock:
            state = self._keys.get(key)
            return state.due if state else None

    def dues(self) -> dict[str, datetime]:
        with self._lock:
            return self._dues_locked()

    def _dues_locked(self) -> dict[str, datetime]:
        """Due keys that may run: a held one (paused, stuck) must not keep the primary waiting."""
        return {
            k: s.due
            for k, s in self._keys.items()
            if s.due is not None and not s.paused and not s.stuck
        }

    def apply(self, key: str, facts: Facts) -> None:
        """Record a refresh (and clear the key's error: the refresh just worked)."""
        with self._lock:
            state = self._keys.get(key)
            if state is None:
                return
            state.due, state.last_success = facts.due, facts.last_success
            if facts.last_run is not None:  # every finished run passes here: the ring's feed
                self._hours.count(*remember(state.recent, facts.last_run))
            state.last_run, state.secret_since, state.error = (
                facts.last_run,
                facts.secret_since,
                None,
            )
            state.grace_until = facts.grace_until

    def grace_until(self, key: str) -> datetime | None:
        with self._lock:
            state = self._keys.get(key)
            return state.grace_until if state else None

    def note_grace(self, key: str, until: datetime) -> None:
        """A rotation was refused: the key's previous secret is in its grace until ``until``."""
        with self._lock:
            state = self._keys.get(key)
            if state is not None:
                state.grace_until = max(until, state.grace_until or until)

    def note_error(self, key: str, error: str) -> None:
        with self._lock:
            state = self._keys.get(key)
            if state is not None:
                state.error = error

    def set_hold(self, key: str, *, paused: str | None, stuck: bool | None = None) -> None:
        """Record what holds the key (``stuck=None``: leave that as it is)."""
        with self._lock:
            state = self._keys.get(key)
            if state is not None:
                state.paused = paused
                if stuck is not None:
                    state.stuck = stuck

    def with_errors(self) -> set[str]:
        with self._lock:
            return {k for k, s in self._keys.items() if s.error is not None}

    # -- quarantine -------------------------------------------------------------------------

    def quarantine(self, key: str, why: str) -> bool:
        """Skip ``key`` from now on (until restart); True the first time (alert once)."""
        with self._lock:
            new = key not in self._quarantine
            self._quarantine.setdefault(key, why)
            return new

    def is_quarantined(self, key: str) -> bool:
        with self._lock:
            return key in self._quarantine

    def quarantined(self) -> tuple[tuple[str, str], ...]:
        with self._lock:
            return tuple(sorted(self._quarantine.items()))

    def seed_history(self, runs: Mapping[str, list[Run]]) -> None:
        """Fill the rings at start-up from one grouped query (``history.recent_runs``)."""
        with self._lock:
            for key, key_runs in runs.items():
                state = self._keys.get(key)
                if state is not None:
                    for run in key_runs:
                        self._hours.count(*remember(state.recent, run))

    def steps(self, key: str, run_id: str) -> tuple[StepMark, ...] | None:
        """The cached steps of ``run_id`` (None: not read yet, or a newer run replaced it)."""
        with self._lock:
            state = self._keys.get(key)
            if state is None or state.steps is None or state.steps[0] != run_id:
                return None
            return state.steps[1]

    def keep_steps(self, key: str, run_id: str, steps: tuple[StepMark, ...]) -> None:
        with self._lock:
            state = self._keys.get(key)
            if state is not None:
                state.steps = (run_id, steps)

    # -- rotations in flight ----------------------------------------------------------------

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def is_running(self, key: str) -> bool:
        with self._lock:
            return key in self._running

    def try_start(self, key: str, allowed: AllowedCheck) -> bool:
        """Mark ``key`` as rotating here when ``allowed(dues, running)`` says it may start;
        both are read and the mark set under one lock, so two keys never both pass a rule
        meant for one at a time."""
        with self._lock:
            ok = allowed(self._dues_locked(), set(self._running))
            if ok:
                self._running.add(key)
        return ok

    def finish(self, key: str) -> bool:
        """Unmark ``key``; True when no rotation is left in flight here."""
        with self._lock:
            self._running.discard(key)
            return not self._running

    @contextmanager
    def guard(self, key: str, *, wait: bool) -> Iterator[bool]:
        """One thread of this process per key: leases are per process (re-entrant for their
        owner), so this lock is what keeps a revocation off a key its own job is rotating."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        got = lock.acquire(blocking=wait)
        try:
            yield got
        finally:
            if got:
                lock.release()

    # -- the status page --------------------------------------------------------------------

    def statuses(
        self,
        now: datetime,
        leases: dict[str, LeaseInfo],
        interval_of: IntervalOf = lambda _key: None,
    ) -> tuple[KeyStatus, ...]:
        """Every managed key as the status page shows it, the primary first."""
        with self._lock:
            states = sorted(
                self._keys.values(), key=lambda s: (not s.account.primary, s.account.api_key)
            )
            running = set(self._running)
            return tuple(_status(s, now, leases, running, interval_of) for s in states)

    def hours(self, now: datetime) -> tuple[HourCount, ...]:
        """Runs per hour over the last 7 days, for the status page's picture."""
        with self._lock:
            return self._hours.window(now)


def _status(
    state: KeyState,
    now: datetime,
    leases: dict[str, LeaseInfo],
    running: set[str],
    interval_of: IntervalOf,
) -> KeyStatus:
    key = state.account.api_key
    lease = leases.get(key)
    age: timedelta | None = now - state.secret_since if state.secret_since else None
    return KeyStatus(
        api_key=key,
        name=state.account.name,
        primary=state.account.primary,
        secret_age=age,
        last_success=state.last_success,
        next_due=state.due,
        postponed_until=state.grace_until
        if state.grace_until and state.grace_until > now
        else None,
        rotating_here=key in running,
        last_run=state.last_run,
        lease=LeaseSummary.of(lease) if lease else None,
        error=state.error,
        interval=interval_of(key),
        recent=tuple(state.recent),
        paused=state.paused,
        stuck=state.stuck,
    )


__all__ = ["Facts", "KeyRegistry", "KeyState"]
