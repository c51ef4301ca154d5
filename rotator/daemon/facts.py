"""What the daemon knows of each key, re-read from the audit log: its due time, last success,
newest run, outstanding grace period and secret age, recorded in the registry and the metrics.

A key is re-read after its own runs, and on housekeeping when the audit log shows events about
it since the last pass (runs other replicas did) or it has a noted error; every key is re-read
every ``FULL_REFRESH`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

import structlog

from rotator.audit import Run, RunStatus
from rotator.clock import parse
from rotator.config import Config
from rotator.daemon.registry import Facts, KeyRegistry
from rotator.errors import RotatorError
from rotator.metrics import Metrics
from rotator.scheduling import max_secret_age, next_due
from rotator.services import Services
from rotator.snapshot import FAILED_STATUSES

log = structlog.get_logger("rotator.daemon")

FULL_REFRESH: Final = 600.0  # seconds: every key re-read, not only those with new audit events
History = tuple[datetime | None, Run | None]  # (last success, newest run)


class KeyFacts:
    def __init__(
        self,
        *,
        config: Config,
        clock: Callable[[], datetime],
        stop: threading.Event,
        keys: KeyRegistry,
        metrics: Metrics,
        services: Services,
    ) -> None:
        self._config, self._clock, self._stop = config, clock, stop
        self._keys, self._metrics, self._services = keys, metrics, services
        self._seen_seq: int | None = None  # audit events up to here are reflected in the keys
        self._full_refresh_due = 0.0  # time.monotonic() of the next full refresh

    def refresh(
        self, key: str, *, spread_new: bool = True, age_from_vault: bool = True
    ) -> datetime | None:
        """Re-read the key's history from the audit log; returns (and records) its due time.
        ``age_from_vault``: a never-rotated key's secret age comes from Vault's rotated_at."""
        if self._keys.first_seen(key) is None:
            return None
        audit = self._services.audit
        newest = audit.runs(api_key=key, limit=1)
        history = (audit.last_success(key), newest[0] if newest else None)
        return self._apply(key, history, spread_new=spread_new, age_from_vault=age_from_vault)

    def refresh_many(
        self, keys: list[str], *, spread_new: bool = True, age_from_vault: bool = True
    ) -> None:
        """``refresh`` for many keys from one grouped read of the audit log (start-up and the
        full pass: two queries per key took ~20 s for 10,000 keys)."""
        try:
            histories = self._services.audit.key_histories()
        except RotatorError as exc:
            for key in keys:
                self._keys.note_error(key, str(exc))
            return
        for key in keys:
            if self._stop.is_set():
                return
            try:
                self._apply(
                    key,
                    histories.get(key, (None, None)),
                    spread_new=spread_new,
                    age_from_vault=age_from_vault,
                )
            except RotatorError as exc:
                self._keys.note_error(key, str(exc))

    def stale_keys(self) -> set[str] | None:
        """Keys to re-read: those with audit events since the last pass (runs of other replicas)
        or a noted error; None means all, every FULL_REFRESH. Re-reading all 10,000 keys every
        30 s cost a third of a CPU core in an idle daemon."""
        try:
            changed, newest = self._services.audit.keys_changed(self._seen_seq or 0)
        except RotatorError as exc:
            log.error("audit_unreadable", error=str(exc))
            self._seen_seq = None
            return None
        full = self._seen_seq is None or time.monotonic() >= self._full_refresh_due
        self._seen_seq = newest  # read before the refresh: later events are seen next pass
        if full:
            self._full_refresh_due = time.monotonic() + FULL_REFRESH
            return None
        return changed | self._keys.with_errors()

    def _apply(
        self, key: str, history: History, *, spread_new: bool, age_from_vault: bool
    ) -> datetime | None:
        """Record the key's due time and metrics from its (last success, newest run)."""
        first_seen = self._keys.first_seen(key)
        if first_seen is None:
            return None
        last_success, last_run = history
        due = self._due(key, history, first_seen=first_seen, spread_new=spread_new)
        grace = self._grace_until(key, last_run)
        if grace is not None:
            due = max(due, grace)  # never revoke a previous secret inside its grace period
        since = last_success or self._keys.secret_since(key)
        if since is None and age_from_vault:
            since = self._vault_rotated_at(key)
        facts = Facts(
            due=due,
            last_success=last_success,
            last_run=last_run,
            secret_since=since,
            grace_until=grace,
        )
        self._keys.apply(key, facts)
        self._publish(key, facts)
        return due

    def _due(
        self, key: str, history: History, *, first_seen: datetime, spread_new: bool
    ) -> datetime:
        """When the key's schedule (or the retry after a failed run) makes it due."""
        last_success, last_run = history
        last_failure = None
        if last_run is not None and last_run.status in FAILED_STATUSES:
            last_failure = last_run.finished_at or last_run.started_at
        return next_due(
            self._config.schedule_for(key),
            api_key=key,
            last_success=last_success,
            first_seen=first_seen,
            last_failure=last_failure,
            retry_delay=self._config.rotation.retry_delay,
            spread_new=spread_new,
        )

    def _publish(self, key: str, facts: Facts) -> None:
        """The key's facts as metrics (the secret's age limit from its schedule and grace)."""
        schedule = self._config.schedule_for(key)
        grace = self._config.grace_period_for(key)
        max_age = max_secret_age(schedule, grace=grace, now=self._clock())
        last_run = facts.last_run
        self._metrics.set_key(
            key,
            last_success=facts.last_success,
            secret_since=facts.secret_since,
            next_due=facts.due,
            max_age_seconds=max_age.total_seconds(),
            last_run_failed=last_run is not None and last_run.status in FAILED_STATUSES,
            grace_until=facts.grace_until,
        )

    def _grace_until(self, key: str, last_run: Run | None) -> datetime | None:
        """When the key's outstanding grace period ends, if it has not: its newest run's
        ``revoke_after``, or what a refused rotation reported (``Work._rotate``)."""
        now = self._clock()
        candidates = [self._keys.grace_until(key)]
        if last_run is not None and last_run.status == RunStatus.AWAITING_REVOKE:
            candidates.append(last_run.revoke_after)
        pending = [c for c in candidates if c is not None and c > now]
        return max(pending) if pending else None

    def _vault_rotated_at(self, key: str) -> datetime | None:
        """The age of a secret rotator never rotated here, if Vault's record says when."""
        try:
            record = self._services.vault.read_current(key)
        except RotatorError:
            return None
        if record is None or not record.rotated_at:
            return None
        try:
            return parse(record.rotated_at)
        except ValueError:
            return None


__all__ = ["FULL_REFRESH", "KeyFacts"]
