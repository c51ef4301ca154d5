"""The ``Daemon``: its lifecycle (start, run, ``--once``, graceful stop) and its status snapshot.

The parts: ``registry`` (the managed keys and what is known of each), ``jobs`` (APScheduler),
``work`` (what the jobs do). This module wires them together and owns the phase.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor as Pool
from datetime import datetime, timedelta
from types import FrameType
from typing import Final

import structlog

from rotator import __version__, db
from rotator.clock import utcnow
from rotator.config import Config
from rotator.control import ControlApi, VaultAuthority
from rotator.control.tls import server_context
from rotator.daemon.control import ControlOperations
from rotator.daemon.delivery import EventDelivery
from rotator.daemon.history import recent_runs, run_steps
from rotator.daemon.jobs import Jobs
from rotator.daemon.registry import KeyRegistry
from rotator.daemon.watch import Watch
from rotator.daemon.work import Context, Work
from rotator.discovery import Discovery
from rotator.drift import watch_tick
from rotator.errors import RotatorError
from rotator.holds import Holds
from rotator.httpserver import HttpServer, Readiness
from rotator.lease import LeaseInfo
from rotator.metrics import Metrics
from rotator.notify import Notifier
from rotator.ratelimit import RateLimiter
from rotator.scheduling import period, run_order
from rotator.services import Services, build
from rotator.snapshot import Phase, StatusSnapshot, StepMark

log = structlog.get_logger("rotator.daemon")

HOUSEKEEPING: Final = timedelta(seconds=30)  # deferred revocations, other replicas' runs


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
        self._phase = Phase.STARTING
        self._keys = KeyRegistry()
        self._jobs = Jobs(self._stop)
        self._services: Services | None = None
        self._work: Work | None = None
        self._watch: Watch | None = None
        self._http: HttpServer | None = None
        self._authority: VaultAuthority | None = None
        self._events = EventDelivery(config.events)
        self._notifier: Notifier | None = None
        self.metrics = Metrics(__version__, clock=clock)
        self._periods: dict[str, timedelta] = {}  # each key's schedule period (config is fixed)

    # -- public surface ---------------------------------------------------------------------

    @property
    def primary(self) -> str:
        return self.config.vonage.primary_api_key

    @property
    def phase(self) -> Phase:
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
        results: list[bool] = []
        try:
            work = self._open()
            work.resume_all()
            work.revoke_due()
            work.discover(initial=True)
            now = self._clock()
            # no /metrics to serve: skip the Vault read of age
            work.refresh_many(self._keys.names(), spread_new=False, age_from_vault=False)
            dues = self._keys.dues()
            due = run_order(
                [k for k, d in dues.items() if d <= now], primary=self.primary, dues=dues
            )
            log.info("once", due=due)
            subs = [k for k in due if k != self.primary]
            with Pool(max_workers=self.config.rotation.max_parallel) as pool:
                results += pool.map(work.rotate_now, subs)
            if self.primary in due and not self._stop.is_set():
                results.append(work.rotate_now(self.primary))
            self._events.flush()
        finally:
            self.shutdown()
        return 0 if all(results) else 1

    def start(self) -> None:
        work = self._open()
        services = self._svc()
        control = self.config.http.control
        self._http = HttpServer(
            self.config.http.listen,
            metrics=self.metrics,
            status=self.status,
            steps=self.last_steps,
            readiness=Readiness(
                engine=services.engine,
                vault=services.vault,
                vonage=services.vonage,
                primary_api_key=self.primary,
                phase=lambda: self._phase,
            ),
            control=self._control_api(services, work) if control.enabled else None,
            max_body=control.max_body,
            tls=server_context(control) if control.enabled else None,
        )
        self._http.start()
        self._events.start()
        work.resume_all()
        if self._stop.is_set():
            return
        rotation = self.config.rotation
        self._jobs.start(max_parallel=rotation.max_parallel)
        work.revoke_due()  # those due now; the others get a job at their revoke_after
        work.discover(initial=True)  # schedules every key found
        self._seed_history(services)
        interval = self.config.accounts.discovery_interval
        self._jobs.every(":discovery", "discover subaccounts", interval, work.discover)
        self._jobs.every(
            ":housekeeping", "deferred revocations and metrics", HOUSEKEEPING, work.housekeeping
        )
        if self.config.watch.enabled and self._watch is not None:
            tick = watch_tick(self.config.watch.interval)
            self._jobs.every(":watch", "drift watch", tick, self._watch.tick)
        self._jobs.every(
            ":anchor", "anchor the audit head", HOUSEKEEPING, services.audit.anchor_head
        )
        self._phase = Phase.RUNNING
        log.info(
            "daemon_started",
            keys=len(self._keys),
            max_parallel=rotation.max_parallel,
            http=f"{self._http.host}:{self._http.port}",
        )

    def request_stop(self) -> None:
        """Take no new rotations; the ones in flight run to their end (shutdown waits)."""
        if not self._stop.is_set():
            log.info("stop_requested", in_flight=self._keys.running())
        self._phase = Phase.STOPPING
        self._stop.set()

    def shutdown(self) -> None:
        self.request_stop()
        self._jobs.shutdown()  # waits for the rotations in flight
        self._events.flush()  # what they announced, before the thread stops
        self._events.stop()
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._authority is not None:
            self._authority.close()
            self._authority = None
        if self._notifier is not None:
            self._notifier.close()
        if self._services is not None:
            self._services.close()
            self._services = None
        log.info("daemon_stopped")

    def status(self) -> StatusSnapshot:
        """What /status shows: every managed key, its secret age, last run, next due, lease."""
        now = self._clock()
        leases: dict[str, LeaseInfo] = {}
        services = self._services
        if services is not None:
            try:
                leases = {info.api_key: info for info in services.leases.all()}
            except RotatorError as exc:
                log.warning("status_leases_unreadable", error=str(exc))
        return StatusSnapshot(
            version=__version__,
            phase=self._phase,
            owner=services.leases.owner if services else None,
            generated_at=now,
            keys=self._keys.statuses(now, leases, self._period),
            quarantined=self._keys.quarantined(),
            hours=self._keys.hours(now),
        )

    def last_steps(self, key: str, run_id: str) -> tuple[StepMark, ...]:
        """The steps of a key's last run for its page: read once per run, then from memory."""
        cached = self._keys.steps(key, run_id)
        if cached is not None:
            return cached
        services = self._services
        if services is None:
            return ()
        steps = run_steps(services.engine, run_id)
        self._keys.keep_steps(key, run_id, steps)
        return steps

    def _period(self, key: str) -> timedelta:
        found = self._periods.get(key)
        if found is None:
            found = period(self.config.schedule_for(key), now=self._clock())
            self._periods[key] = found
        return found

    def _seed_history(self, services: Services) -> None:
        """The status page's run history, for every key at once (one grouped query)."""
        try:
            self._keys.seed_history(recent_runs(services.engine))
        except RotatorError as exc:
            log.warning("history_unreadable", error=str(exc))

    # -- start-up ---------------------------------------------------------------------------

    def _open(self) -> Work:
        """Migrate (once across replicas), then build the services with one shared limiter."""
        engine = db.make_engine(self.config.database.url)
        try:
            with db.migration_lock(engine):
                db.upgrade(engine)
        finally:
            engine.dispose()
        limiter = RateLimiter(self.config.vonage.max_calls_per_second)
        services = build(self.config, migrate=False, limiter=limiter, boundary=self._boundary)
        self._services = services
        self._events.open(services.engine, self.metrics.registry)
        audit, vault, vonage = services.audit, services.vault, services.vonage
        self._notifier = Notifier(self.config, audit=audit, vault=vault, vonage=vonage)
        context = Context(
            config=self.config,
            clock=self._clock,
            stop=self._stop,
            keys=self._keys,
            jobs=self._jobs,
            metrics=self.metrics,
            services=services,
            notifier=self._notifier,
            discovery=Discovery(self.config, audit=audit, vault=vault, vonage=vonage),
            holds=Holds(services.engine, audit),
        )
        self._work = Work(context)
        self._watch = Watch(context, self._work)
        return self._work

    def _control_api(self, services: Services, work: Work) -> ControlApi:
        """The control API over this daemon's work (``rotator.daemon.control``)."""
        self._authority = VaultAuthority(self.config.vault)
        operations = ControlOperations(work.context, work)
        return ControlApi(
            self.config.http.control,
            authority=self._authority,
            operations=operations,
            audit=services.audit,
        )

    def _svc(self) -> Services:
        if self._services is None:
            raise RuntimeError("the daemon is not started")
        return self._services

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        self.request_stop()


__all__ = ["Daemon"]
