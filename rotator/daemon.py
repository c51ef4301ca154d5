"""``rotator run``: keeps every key of the account rotated on schedule, unattended.

One APScheduler job per API key (job id = the key), each a one-shot check at the key's due time
that rotates if the audit log says the key is due, then schedules its own next check. Keys rotate
in parallel on a bounded pool and share one rate limiter. Everything the schedule depends on lives
in the database, so restarts and replicas agree on it; leases keep two processes off one key.

Start: migrate, resume runs a crash left unfinished, revoke old secrets whose grace period has
passed, discover the keys, schedule them. Stop (SIGTERM/SIGINT): start no new rotation, let each
one in flight run to its end (a run is never abandoned half-way; its slowest step, verify, is
bounded by rotation.verify_timeout), exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor as Pool
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Final

import sqlalchemy as sa
import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rotator import __version__, db
from rotator.audit import Run, RunStatus, Trigger, utcnow
from rotator.config import Config
from rotator.discovery import Account, Discovery
from rotator.errors import LeaseHeldError, RotatorError
from rotator.httpserver import HttpServer, Readiness
from rotator.lease import owner_is_dead
from rotator.metrics import Metrics
from rotator.notify import Notifier
from rotator.ratelimit import RateLimiter
from rotator.scheduling import (
    grace_for,
    max_secret_age,
    may_start,
    next_due,
    run_order,
    schedule_for,
)
from rotator.services import Services, build

log = structlog.get_logger("rotator.daemon")

ACTOR: Final = "rotator-daemon"
BLOCKED_RECHECK = timedelta(seconds=0.25)  # a key waiting for the primary (or vice versa)
HOUSEKEEPING = timedelta(seconds=30)  # deferred revocations, metrics from other replicas' runs
FULL_REFRESH = 600.0  # seconds: every key re-read, not only those with new audit events
_MIGRATION_LOCK = 0x0707_A0D2  # PostgreSQL advisory lock: replicas starting together migrate once
_FAILED = {RunStatus.FAILED, RunStatus.ROLLED_BACK}


@dataclass
class KeyState:
    """What the daemon knows about one managed key (refreshed from the audit log)."""

    account: Account
    first_seen: datetime
    due: datetime | None = None
    last_success: datetime | None = None
    last_run: Run | None = None
    secret_since: datetime | None = None  # last success, else Vault's rotated_at
    error: str | None = None  # the last check's own error (database down...), if any


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        boundary: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._boundary = boundary  # around every rotation step (rotator.rotation.Rotator)
        self._clock = clock
        self._stop = threading.Event()
        self._phase = "starting"
        self._lock = threading.Lock()  # guards _keys, _running, _key_locks
        # Held around every call a job makes into the scheduler: see _scheduler_open().
        self._scheduler_lock = threading.Lock()
        self._keys: dict[str, KeyState] = {}
        self._running: set[str] = set()
        self._key_locks: dict[str, threading.Lock] = {}
        self._services: Services | None = None
        self._scheduler: Any = None
        self._http: HttpServer | None = None
        self.metrics = Metrics(__version__, clock=clock)
        self._notifier: Notifier | None = None
        self._discovery: Discovery | None = None
        self._recheck = min(
            max(config.rotation.lease_ttl / 2, timedelta(seconds=1)), timedelta(seconds=30)
        )
        self._seen_seq: int | None = None  # audit events up to here are reflected in _keys
        self._full_refresh_due = 0.0  # time.monotonic() of the next full refresh

    # -- public surface ---------------------------------------------------------------------

    @property
    def primary(self) -> str:
        return self.config.vonage.primary_api_key

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http else None

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop)."""
        self._install_signal_handlers()
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            self.shutdown()
        return 0

    def run_once(self) -> int:
        """Rotate every key that is due now (subaccounts first, the primary last), then return:
        0 when every one succeeded (or another process had it), 1 otherwise."""
        self._install_signal_handlers()
        try:
            self._open()
            self._resume_all()
            self._revoke_due()
            self._discover(initial=True)
            now = self._clock()
            for key in self._key_names():  # no /metrics to serve: skip the Vault read of age
                self._refresh(key, spread_new=False, age_from_vault=False)
            dues = self._dues()
            due = run_order(
                [k for k, d in dues.items() if d <= now], primary=self.primary, dues=dues
            )
            log.info("once", due=due)
            subs = [k for k in due if k != self.primary]
            results: list[bool] = []
            with Pool(max_workers=self.config.rotation.max_parallel) as pool:
                results += pool.map(self._rotate_now, subs)
            if self.primary in due and not self._stop.is_set():
                results.append(self._rotate_now(self.primary))
        finally:
            self.shutdown()
        return 0 if all(results) else 1

    def start(self) -> None:
        self._open()
        assert self._services is not None
        self._http = HttpServer(
            self.config.http.listen,
            metrics=self.metrics,
            status=self.status,
            readiness=Readiness(
                engine=self._services.engine,
                vault=self._services.vault,
                vonage=self._services.vonage,
                primary_api_key=self.primary,
                phase=lambda: self._phase,
            ),
        )
        self._http.start()
        self._resume_all()
        if self._stop.is_set():
            return
        rotation = self.config.rotation
        self._scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(2),
                "rotations": ThreadPoolExecutor(rotation.max_parallel),
            },
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        self._scheduler.start()
        self._revoke_due()  # those due now; the others get a job at their revoke_after
        self._discover(initial=True)  # schedules every key found
        self._scheduler.add_job(
            self._discover,
            IntervalTrigger(seconds=self.config.accounts.discovery_interval.total_seconds()),
            id=":discovery",
            name="discover subaccounts",
        )
        self._scheduler.add_job(
            self._housekeeping,
            IntervalTrigger(seconds=HOUSEKEEPING.total_seconds()),
            id=":housekeeping",
            name="deferred revocations and metrics",
        )
        self._phase = "running"
        log.info(
            "daemon_started",
            keys=len(self._keys),
            max_parallel=rotation.max_parallel,
            http=f"{self._http.host}:{self._http.port}",
        )

    def request_stop(self) -> None:
        """Take no new rotations; the ones in flight run to their end (shutdown waits)."""
        if not self._stop.is_set():
            log.info("stop_requested", in_flight=sorted(self._running))
        self._phase = "stopping"
        self._stop.set()

    def shutdown(self) -> None:
        self.request_stop()
        with self._scheduler_lock:  # from here on, no job calls into the scheduler
            scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)  # waits for the rotations in flight
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._notifier is not None:
            self._notifier.close()
        if self._services is not None:
            self._services.close()
            self._services = None
        log.info("daemon_stopped")

    def status(self) -> dict[str, Any]:
        """What /status shows: every managed key, its secret age, last run, next due, lease."""
        now = self._clock()
        leases: dict[str, Any] = {}
        services = self._services
        if services is not None:
            try:
                leases = {info.api_key: info for info in services.leases.all()}
            except RotatorError as exc:
                log.warning("status_leases_unreadable", error=str(exc))
        with self._lock:
            states = sorted(
                self._keys.values(), key=lambda s: (not s.account.primary, s.account.api_key)
            )
            running = set(self._running)
        keys = []
        for state in states:
            key = state.account.api_key
            lease = leases.get(key)
            run = state.last_run
            failing = bool(run is not None and run.status in _FAILED) or state.error is not None
            keys.append(
                {
                    "api_key": key,
                    "name": state.account.name,
                    "primary": state.account.primary,
                    "secret_age_seconds": (now - state.secret_since).total_seconds()
                    if state.secret_since
                    else None,
                    "last_success": _iso(state.last_success),
                    "next_due": _iso(state.due),
                    "rotating_here": key in running,
                    "last_run": _run_summary(run),
                    "lease": {
                        "owner": lease.owner,
                        "expires_at": _iso(lease.expires_at),
                        "active": lease.active,
                    }
                    if lease is not None
                    else None,
                    "failing": failing,
                    "error": state.error,
                }
            )
        return {
            "version": __version__,
            "phase": self._phase,
            "owner": services.leases.owner if services else None,
            "generated_at": _iso(now),
            "keys": keys,
        }

    # -- start-up ---------------------------------------------------------------------------

    def _open(self) -> None:
        """Migrate (once across replicas), then build the services with one shared limiter."""
        engine = db.make_engine(self.config.database.url)
        try:
            with _migration_lock(engine):
                db.upgrade(engine)
        finally:
            engine.dispose()
        limiter = RateLimiter(self.config.vonage.max_calls_per_second)
        services = build(self.config, migrate=False, limiter=limiter, boundary=self._boundary)
        self._services = services
        self._notifier = Notifier(
            self.config, audit=services.audit, vault=services.vault, vonage=services.vonage
        )
        self._discovery = Discovery(
            self.config, audit=services.audit, vault=services.vault, vonage=services.vonage
        )

    def _resume_all(self) -> None:
        """Finish or roll back every run a crash left ``running`` before any new run starts."""
        services = self._svc()
        for key in sorted({run.api_key for run in services.audit.unfinished_runs()}):
            if self._stop.is_set():
                return
            with self._key_guard(key, wait=True) as got:
                if not got:
                    continue
                try:
                    for run in services.rotator.resume_unfinished(key):
                        self._after_run(run, None)
                except LeaseHeldError:
                    log.info("resume_skipped_lease_held", api_key=key)
                except RotatorError as exc:
                    log.error("resume_failed", api_key=key, error=str(exc))
                    self._alert("failed", key, f"resuming an interrupted run failed: {exc}")

    # -- the per-key job --------------------------------------------------------------------

    def _check(self, key: str) -> None:
        """The key's job: rotate if due (and allowed to start), then schedule the next check."""
        if self._stop.is_set():
            return
        when: datetime | None = None
        with self._key_guard(key, wait=False) as got:
            if not got:  # a revocation (or a woken duplicate) of ours is on this key
                self._schedule(key, self._clock() + BLOCKED_RECHECK)
                return
            try:
                when = self._check_locked(key)
            except LeaseHeldError as exc:
                log.info("key_busy", api_key=key, detail=str(exc))
                when = self._clock() + self._recheck
            except RotatorError as exc:
                log.error("check_failed", api_key=key, error=str(exc))
                self._note_error(key, str(exc))
                when = self._clock() + self.config.rotation.retry_delay
            except Exception as exc:  # never lose a key's job to a bug
                log.exception("check_crashed", api_key=key)
                self._note_error(key, f"{type(exc).__name__}: internal error")
                when = self._clock() + self.config.rotation.retry_delay
        self._schedule(key, when)

    def _check_locked(self, key: str) -> datetime | None:
        services = self._svc()
        now = self._clock()
        due = self._refresh(key)  # also when busy: the primary's turn depends on every due
        if self._held_elsewhere(key):
            return now + self._recheck
        if services.audit.unfinished_runs(key):
            for run in services.rotator.resume_unfinished(key):
                self._after_run(run, None)
            due = self._refresh(key)
        if due is None or due > now:
            return due
        with self._lock:
            allowed = may_start(
                key, primary=self.primary, now=now, dues=self._dues_locked(), running=self._running
            )
            if allowed:
                self._running.add(key)
        if not allowed:
            return now + BLOCKED_RECHECK
        try:
            self._rotate(key)
        finally:
            with self._lock:
                self._running.discard(key)
                wake = key != self.primary and not self._running
        if wake:
            self._wake(self.primary)  # it may have been waiting for the subaccounts
        return self._refresh(key)

    def _wake(self, key: str) -> None:
        """Check ``key`` now if it is due and parked behind another key."""
        with self._lock:
            state = self._keys.get(key)
            due = state.due if state else None
            busy = key in self._running
        if due is not None and due <= self._clock() and not busy:
            self._schedule(key, self._clock())

    def _rotate_now(self, key: str) -> bool:
        """``--once``: one rotation of ``key``, under its in-process guard."""
        with self._key_guard(key, wait=True):
            try:
                return self._rotate(key)
            except LeaseHeldError as exc:  # another process is rotating it: not our failure
                log.warning("key_busy", api_key=key, detail=str(exc))
                return True

    def _rotate(self, key: str) -> bool:
        """One scheduled rotation with metrics and alerts; True when the new secret is current."""
        if self._stop.is_set():
            return False
        services = self._svc()
        started = time.monotonic()
        try:
            outcome = services.rotator.rotate(
                key,
                trigger=Trigger.SCHEDULED,
                actor=ACTOR,
                reason="scheduled rotation",
                lock_wait=timedelta(0),
            )
        except LeaseHeldError:
            raise
        except RotatorError as exc:
            # The run could not even be recorded as ended (rollback pending, database down...).
            log.error("rotation_error", api_key=key, error=str(exc))
            self.metrics.observe_run(key, str(RunStatus.FAILED), time.monotonic() - started)
            self._alert("failed", key, str(exc))
            return False
        for run in outcome.resumed:
            self._after_run(run, None)
        self._after_run(outcome.run, time.monotonic() - started)
        return outcome.ok

    def _after_run(self, run: Run, seconds: float | None) -> None:
        """Count it, alert on failure, and book the deferred revocation of a grace period."""
        if seconds is not None:
            self.metrics.observe_run(run.api_key, str(run.status), seconds)
        else:
            self.metrics.rotations.labels(api_key=run.api_key, outcome=str(run.status)).inc()
        if run.status in _FAILED:
            kind = "rolled_back" if run.status == RunStatus.ROLLED_BACK else "failed"
            self._alert(kind, run.api_key, run.error or str(run.status), run.id)
        if run.status == RunStatus.AWAITING_REVOKE and run.revoke_after is not None:
            self._schedule_revocation(run)

    def _refresh(
        self, key: str, *, spread_new: bool = True, age_from_vault: bool = True
    ) -> datetime | None:
        """Re-read the key's history from the audit log; returns (and records) its due time.
        ``age_from_vault``: a never-rotated key's secret age comes from Vault's rotated_at."""
        services = self._svc()
        with self._lock:
            state = self._keys.get(key)
        if state is None:
            return None
        last_success = services.audit.last_success(key)
        newest = services.audit.runs(api_key=key, limit=1)
        last_run = newest[0] if newest else None
        last_failure = None
        if last_run is not None and last_run.status in _FAILED:
            last_failure = last_run.finished_at or last_run.started_at
        schedule = schedule_for(self.config, key)
        due = next_due(
            schedule,
            api_key=key,
            last_success=last_success,
            first_seen=state.first_seen,
            last_failure=last_failure,
            retry_delay=self.config.rotation.retry_delay,
            spread_new=spread_new,
        )
        since = last_success or state.secret_since
        if since is None and age_from_vault:
            since = self._vault_rotated_at(key)
        with self._lock:
            state.due, state.last_success, state.last_run = due, last_success, last_run
            state.secret_since, state.error = since, None
        self.metrics.set_key(
            key,
            last_success=last_success,
            secret_since=since,
            next_due=due,
            max_age_seconds=max_secret_age(
                schedule, grace=grace_for(self.config, key), now=self._clock()
            ).total_seconds(),
            last_run_failed=last_run is not None and last_run.status in _FAILED,
        )
        return due

    def _vault_rotated_at(self, key: str) -> datetime | None:
        """The age of a secret rotator never rotated here, if Vault's record says when."""
        try:
            record = self._svc().vault.read_current(key)
        except RotatorError:
            return None
        if record is None or not record.rotated_at:
            return None
        try:
            return datetime.strptime(record.rotated_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None

    def _held_elsewhere(self, key: str) -> bool:
        """Another live process holds the key's lease (a dead one's is taken over at once)."""
        services = self._svc()
        info = services.leases.holder(key)
        return (
            info is not None
            and info.active
            and info.owner != services.leases.owner
            and not owner_is_dead(info.owner)
        )

    # -- scheduling -------------------------------------------------------------------------

    @contextmanager
    def _scheduler_open(self) -> Iterator[Any]:
        """The scheduler, or None once stopping. APScheduler's shutdown(wait=True) holds its
        job-store lock while it waits for the running jobs, so a job calling into it after that
        (add_job, get_job...) would deadlock the shutdown: this lock orders the two."""
        with self._scheduler_lock:
            yield None if self._stop.is_set() else self._scheduler

    def _schedule(self, key: str, when: datetime | None = None) -> None:
        """(Re)book the key's job at ``when`` (default: its due time)."""
        if self._stop.is_set() or self._scheduler is None:
            return
        with self._lock:
            state = self._keys.get(key)
            if state is None:
                return  # discovery dropped it meanwhile
            when = when or state.due or self._clock()
        with self._scheduler_open() as scheduler:
            if scheduler is None:
                return
            scheduler.add_job(
                self._check,
                DateTrigger(run_date=when, timezone=UTC),
                args=[key],
                id=key,
                name=f"rotate {key}",
                executor="rotations",
                replace_existing=True,
                max_instances=2,  # a reschedule racing the end of this very run must not be dropped
            )

    def _schedule_revocation(self, run: Run, at: datetime | None = None) -> None:
        when = at or run.revoke_after
        if self._scheduler is None or self._stop.is_set() or when is None:
            return
        with self._scheduler_open() as scheduler:
            if scheduler is None:
                return
            scheduler.add_job(
                self._revoke_due,
                DateTrigger(run_date=when, timezone=UTC),
                id=f":revoke:{run.id}",
                name=f"revoke the old secret of {run.api_key}",
                replace_existing=True,
            )

    def _revoke_due(self) -> None:
        """Revoke old secrets whose grace period has passed (the durable deferred step)."""
        services = self._svc()
        now = self._clock()
        try:
            waiting = services.audit.awaiting_revoke()
        except RotatorError as exc:
            log.error("revocations_unreadable", error=str(exc))
            return
        for run in waiting:
            if self._stop.is_set():
                return
            if run.revoke_after is None or run.revoke_after > now:
                self._schedule_revocation(run)  # re-armed after a restart, or another's run
                continue
            with self._key_guard(run.api_key, wait=False) as got:
                if not got:  # the key's own job is busy with it: come back soon
                    self._schedule_revocation(run, at=now + self._recheck)
                    continue
                try:
                    done = services.rotator.complete_revocation(run)
                    log.info(
                        "revocation_completed",
                        api_key=run.api_key,
                        run_id=run.id,
                        status=str(done.status),
                    )
                except LeaseHeldError:
                    self._schedule_revocation(run, at=now + self._recheck)
                except RotatorError as exc:
                    log.error("revocation_failed", api_key=run.api_key, error=str(exc))
                    self._alert(
                        "failed", run.api_key, f"revoking the old secret failed: {exc}", run.id
                    )

    def _discover(self, *, initial: bool = False) -> None:
        """Bring the managed keys in line with the account: new keys scheduled, gone ones not."""
        discovery = self._discovery
        assert discovery is not None
        now = self._clock()
        try:
            found = discovery.discover()
            accounts = found.accounts
        except RotatorError as exc:
            log.error("discovery_failed", error=str(exc))
            if not initial:
                return  # keep what we have; try again next time
            try:
                known = discovery.recorded_keys() | {self.primary}
            except RotatorError:
                known = {self.primary}
            accounts = [Account(api_key=k, primary=k == self.primary) for k in sorted(known)]
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
        for key in gone:
            self.metrics.remove_key(key)
            with self._scheduler_open() as scheduler, suppress(JobLookupError):
                if scheduler is not None:  # already fired (a check is running) or gone: fine
                    scheduler.remove_job(key)
        if self._scheduler is not None:
            for key in new:  # every due time first, so the primary sees the subaccounts due
                try:
                    self._refresh(key)
                except RotatorError as exc:
                    self._note_error(key, str(exc))
            for key in new:
                self._schedule(key)
        if gone or new:
            log.info("keys_changed", added=sorted(new), removed=sorted(gone))

    def _housekeeping(self) -> None:
        """Deferred revocations, and state/metrics refreshed for runs other replicas did."""
        self._revoke_due()
        stale = self._stale_keys()
        for key in self._key_names():
            if self._stop.is_set():
                return
            try:
                if stale is None or key in stale:
                    self._refresh(key)
            except RotatorError as exc:
                self._note_error(key, str(exc))
            with self._scheduler_open() as scheduler:
                missing = scheduler is not None and scheduler.get_job(key) is None
            if missing:
                with self._lock:
                    busy = key in self._running
                if not busy:
                    self._schedule(key)  # a safety net: every key always has its job

    def _stale_keys(self) -> set[str] | None:
        """Keys to re-read: those with audit events since the last pass (runs of other replicas)
        or a noted error; None means all, every FULL_REFRESH. Re-reading all 10,000 keys every
        30 s cost a third of a CPU core in an idle daemon."""
        try:
            changed, newest = self._svc().audit.keys_changed(self._seen_seq or 0)
        except RotatorError as exc:
            log.error("audit_unreadable", error=str(exc))
            self._seen_seq = None
            return None
        full = self._seen_seq is None or time.monotonic() >= self._full_refresh_due
        self._seen_seq = newest  # read before the refresh: later events are seen next pass
        if full:
            self._full_refresh_due = time.monotonic() + FULL_REFRESH
            return None
        with self._lock:
            return changed | {k for k, s in self._keys.items() if s.error is not None}

    # -- helpers ----------------------------------------------------------------------------

    def _svc(self) -> Services:
        if self._services is None:
            raise RuntimeError("the daemon is not started")
        return self._services

    def _key_names(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    def _dues(self) -> dict[str, datetime]:
        with self._lock:
            return self._dues_locked()

    def _dues_locked(self) -> dict[str, datetime]:
        return {k: s.due for k, s in self._keys.items() if s.due is not None}

    def _note_error(self, key: str, error: str) -> None:
        with self._lock:
            state = self._keys.get(key)
            if state is not None:
                state.error = error

    @contextmanager
    def _key_guard(self, key: str, *, wait: bool) -> Iterator[bool]:
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

    def _alert(self, kind: str, key: str, message: str, run_id: str | None = None) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.alert(kind, key, message, run_id=run_id)
        except Exception:  # an alert must never break the daemon
            log.exception("alert_crashed", kind=kind, api_key=key)

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        _route_library_logs()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        self.request_stop()


class _StructlogHandler(logging.Handler):
    """APScheduler logs through the standard library; its warnings join rotator's JSON lines."""

    def emit(self, record: logging.LogRecord) -> None:
        log.log(
            record.levelno, "library_log", logger=record.name, message=record.getMessage()[:500]
        )


def _route_library_logs() -> None:
    logger = logging.getLogger("apscheduler")
    if not any(isinstance(h, _StructlogHandler) for h in logger.handlers):
        logger.addHandler(_StructlogHandler(logging.WARNING))
    logger.setLevel(logging.WARNING)
    logger.propagate = False


@contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    """On PostgreSQL, one replica migrates while the others wait (then find nothing to do)."""
    if not db.is_postgres(engine):
        yield
        return
    with db.translate_errors("lock the schema for migration", engine), engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK})
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def _run_summary(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.id,
        "status": str(run.status),
        "trigger": run.trigger,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
    }


__all__ = ["Daemon", "KeyState"]
