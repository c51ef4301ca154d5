"""The daemon's jobs over APScheduler: the only code that touches the scheduler and its lock.

One one-shot job per key (job id = the key) on the ``rotations`` pool; one per deferred
revocation (``:revoke:<run id>``); interval jobs for discovery and housekeeping.

APScheduler's ``shutdown(wait=True)`` holds its job-store lock while it waits for the running
jobs, so a job calling into the scheduler after that (add_job, get_job...) would deadlock the
shutdown: every call here goes through one lock that ``shutdown`` takes first, and is a no-op
once stopping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger


class Jobs:
    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop  # set: no new calls into the scheduler
        self._lock = threading.Lock()
        self._scheduler: Any = None

    @property
    def started(self) -> bool:
        return self._scheduler is not None

    def start(self, *, max_parallel: int) -> None:
        self._scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(2),
                "rotations": ThreadPoolExecutor(max_parallel),
            },
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        """Wait for the jobs in flight (the stop event must be set already)."""
        with self._lock:  # from here on, no job calls into the scheduler
            scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)

    @contextmanager
    def _open(self) -> Iterator[Any]:
        """The scheduler, or None once stopping (or before start)."""
        with self._lock:
            yield None if self._stop.is_set() else self._scheduler

    def every(self, job_id: str, name: str, interval: timedelta, fn: Callable[[], None]) -> None:
        with self._open() as scheduler:
            if scheduler is not None:
                trigger = IntervalTrigger(seconds=interval.total_seconds())
                scheduler.add_job(fn, trigger, id=job_id, name=name)

    def check_at(self, key: str, when: datetime, fn: Callable[[str], None]) -> None:
        """(Re)book the key's one-shot check at ``when``."""
        self._once(
            partial(fn, key),
            when,
            job_id=key,
            name=f"rotate {key}",
            executor="rotations",
            max_instances=2,  # a reschedule racing the end of this very run must not be dropped
        )

    def revoke_at(self, run_id: str, api_key: str, when: datetime, fn: Callable[[], None]) -> None:
        """(Re)book the deferred revocation of a run's old secret."""
        self._once(fn, when, job_id=f":revoke:{run_id}", name=f"revoke the old secret of {api_key}")

    def _once(
        self, fn: Callable[[], None], when: datetime, *, job_id: str, name: str, **options: Any
    ) -> None:
        with self._open() as scheduler:
            if scheduler is not None:
                trigger = DateTrigger(run_date=when, timezone=UTC)
                scheduler.add_job(
                    fn, trigger, id=job_id, name=name, replace_existing=True, **options
                )

    def run_now(self, job_id: str, name: str, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on the rotations pool at once (the control API's requests); False once
        stopping or before start."""
        with self._open() as scheduler:
            if scheduler is None:
                return False
            scheduler.add_job(fn, id=job_id, name=name, executor="rotations")
            return True

    def drop_check(self, key: str) -> None:
        with self._open() as scheduler, suppress(JobLookupError):
            if scheduler is not None:  # already fired (a check is running) or gone: fine
                scheduler.remove_job(key)

    def check_missing(self, key: str) -> bool:
        """The key has no check booked (and the scheduler still takes jobs)."""
        with self._open() as scheduler:
            return scheduler is not None and scheduler.get_job(key) is None


__all__ = ["Jobs"]
