"""The daemon's key registry: which keys it manages, what it knows of each, which rotate here.

One lock guards it all; every method takes it briefly and never calls out while holding it, so
jobs, housekeeping and the status page can read it from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotator.audit import Run
from rotator.discovery import Account
from rotator.lease import LeaseInfo
from rotator.snapshot import KeyStatus, LeaseSummary

AllowedCheck = Callable[[dict[str, datetime], set[str]], bool]  # (dues, running) -> may start


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
        return {k: s.due for k, s in self._keys.items() if s.due is not None}

    def apply(self, key: str, facts: Facts) -> None:
        """Record a refresh (and clear the key's error: the refresh just worked)."""
        with self._lock:
            state = self._keys.get(key)
            if state is None:
                return
            state.due, state.last_success = facts.due, facts.last_success
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

    def with_errors(self) -> set[str]:
        with self._lock:
            return {k for k, s in self._keys.items() if s.error is not None}

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

    def statuses(self, now: datetime, leases: dict[str, LeaseInfo]) -> tuple[KeyStatus, ...]:
        """Every managed key as the status page shows it, the primary first."""
        with self._lock:
            states = sorted(
                self._keys.values(), key=lambda s: (not s.account.primary, s.account.api_key)
            )
            running = set(self._running)
            return tuple(_status(s, now, leases, running) for s in states)


def _status(
    state: KeyState, now: datetime, leases: dict[str, LeaseInfo], running: set[str]
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
        grace_until=state.grace_until if state.grace_until and state.grace_until > now else None,
        rotating_here=key in running,
        last_run=state.last_run,
        lease=LeaseSummary.of(lease) if lease else None,
        error=state.error,
    )


__all__ = ["Facts", "KeyRegistry", "KeyState"]
