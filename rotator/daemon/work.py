"""What the daemon's jobs do: check a key and rotate it when due, revoke old secrets whose grace
period has passed, follow the account's keys, and refresh what other replicas changed.

Every failure of one key is logged, noted on the key and alerted: a key's job is never lost, and
one key's trouble never stops the others. What the daemon knows of each key is kept by
``daemon.facts``; what holds a due key back (pause, stuck, a lease elsewhere) by ``daemon.holding``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import structlog

from rotator.audit import Run, RunStatus, Trigger
from rotator.config import Config
from rotator.daemon.facts import KeyFacts
from rotator.daemon.holding import HoldCheck, recheck_interval
from rotator.daemon.jobs import Jobs
from rotator.daemon.registry import KeyRegistry
from rotator.discovery import Account, Discovery
from rotator.errors import GracePeriodActiveError, LeaseHeldError, RotatorError
from rotator.holds import Holds
from rotator.metrics import Metrics
from rotator.notify import Notifier
from rotator.scheduling import may_start
from rotator.services import Services
from rotator.snapshot import FAILED_STATUSES

log = structlog.get_logger("rotator.daemon")

ACTOR: Final = "rotator-daemon"
BLOCKED_RECHECK = timedelta(seconds=0.25)  # a key waiting for the primary (or vice versa)


@dataclass(frozen=True, kw_only=True)
class Context:
    """What every job shares: settings, the stop signal and the daemon's parts."""

    config: Config
    clock: Callable[[], datetime]
    stop: threading.Event
    keys: KeyRegistry
    jobs: Jobs
    metrics: Metrics
    services: Services
    notifier: Notifier
    discovery: Discovery
    holds: Holds

    @property
    def primary(self) -> str:
        return self.config.vonage.primary_api_key


class Work:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._recheck = recheck_interval(ctx.config)
        self._facts = KeyFacts(
            config=ctx.config,
            clock=ctx.clock,
            stop=ctx.stop,
            keys=ctx.keys,
            metrics=ctx.metrics,
            services=ctx.services,
        )
        self._holding = HoldCheck(
            config=ctx.config,
            holds=ctx.holds,
            keys=ctx.keys,
            metrics=ctx.metrics,
            services=ctx.services,
            alert=self.alert,
        )

    @property
    def context(self) -> Context:
        return self._ctx

    # -- start-up ---------------------------------------------------------------------------

    def resume_all(self) -> None:
        """Finish or roll back every run a crash left ``running`` before any new run starts."""
        ctx = self._ctx
        for key in sorted({run.api_key for run in ctx.services.audit.unfinished_runs()}):
            if ctx.stop.is_set():
                return
            with ctx.keys.guard(key, wait=True) as got:
                if not got:
                    continue
                try:
                    for run in ctx.services.rotator.resume_unfinished(key):
                        self._after_run(run, None)
                except LeaseHeldError:
                    log.info("resume_skipped_lease_held", api_key=key)
                except RotatorError as exc:
                    log.error("resume_failed", api_key=key, error=str(exc))
                    self.alert("failed", key, f"resuming an interrupted run failed: {exc}")
                except Exception as exc:  # a key that breaks resuming must not stop start-up
                    log.exception("resume_crashed", api_key=key)
                    self.quarantine(key, f"resuming crashed: {type(exc).__name__}")

    # -- the per-key job --------------------------------------------------------------------

    def check(self, key: str) -> None:
        """The key's job: rotate if due (and allowed to start), then schedule the next check."""
        ctx = self._ctx
        if ctx.stop.is_set() or ctx.keys.is_quarantined(key):
            return
        when: datetime | None = None
        with ctx.keys.guard(key, wait=False) as got:
            if not got:  # a revocation (or a woken duplicate) of ours is on this key
                self.schedule(key, ctx.clock() + BLOCKED_RECHECK)
                return
            try:
                when = self._check_locked(key)
            except LeaseHeldError as exc:
                log.info("key_busy", api_key=key, detail=str(exc))
                when = ctx.clock() + self._recheck
            except RotatorError as exc:
                log.error("check_failed", api_key=key, error=str(exc))
                ctx.keys.note_error(key, str(exc))
                when = ctx.clock() + ctx.config.rotation.retry_delay
            except Exception as exc:  # a bug with this key: skip it, keep every other
                log.exception("check_crashed", api_key=key)
                ctx.keys.note_error(key, f"{type(exc).__name__}: internal error")
                self.quarantine(key, f"its check crashed: {type(exc).__name__}")
                return
        self.schedule(key, when)

    def _check_locked(self, key: str) -> datetime | None:
        ctx = self._ctx
        now = ctx.clock()
        due = self.refresh(key)  # also when busy: the primary's turn depends on every due
        if self._holding.held_elsewhere(key):
            return now + self._recheck
        if ctx.services.audit.unfinished_runs(key):
            for run in ctx.services.rotator.resume_unfinished(key):
                self._after_run(run, None)
            due = self.refresh(key)
        if due is None or due > now:
            return due
        held = self._held(key, now)
        if held is not None:
            return held
        if not ctx.keys.try_start(
            key,
            lambda dues, running: may_start(
                key, primary=ctx.primary, now=now, dues=dues, running=running
            ),
        ):
            return now + BLOCKED_RECHECK
        try:
            self._rotate(key)
        finally:
            idle = ctx.keys.finish(key)
        if key != ctx.primary and idle:
            self._wake(ctx.primary)  # it may have been waiting for the subaccounts
        return self.refresh(key)

    def _held(self, key: str, now: datetime) -> datetime | None:
        """When a pause or the stuck rule holds a due key: when to look again (``holding``)."""
        return self._holding.held(key, now)

    def emergency(self, key: str, reason: str) -> bool:
        """An emergency rotation now (drift): pauses and the stuck rule do not hold it."""
        ctx = self._ctx
        with ctx.keys.guard(key, wait=True):
            pause = ctx.holds.pause_for(key, ctx.clock())
            if pause is not None:
                reason += f" (the key was paused: {pause.describe()})"
            started = time.monotonic()
            try:
                outcome = ctx.services.rotator.rotate(
                    key, actor=ACTOR, reason=reason, emergency=True, lock_wait=timedelta(0)
                )
            except RotatorError as exc:  # a lease held elsewhere included: that run decides
                log.error("emergency_failed", api_key=key, error=str(exc))
                self.alert("failed", key, f"emergency rotation failed: {exc}")
                return False
        for run in outcome.resumed:
            self._after_run(run, None)
        self._after_run(outcome.run, time.monotonic() - started)
        self.refresh(key)
        return outcome.ok

    def _wake(self, key: str) -> None:
        """Check ``key`` now if it is due and parked behind another key."""
        ctx = self._ctx
        due = ctx.keys.due(key)
        if due is not None and due <= ctx.clock() and not ctx.keys.is_running(key):
            self.schedule(key, ctx.clock())

    def rotate_now(self, key: str) -> bool:
        """``--once``: one rotation of ``key``, under its in-process guard (unless held)."""
        with self._ctx.keys.guard(key, wait=True):
            if self._held(key, self._ctx.clock()) is not None:
                return True  # paused or stuck: not a failure of this pass
            try:
                return self._rotate(key)
            except LeaseHeldError as exc:  # another process is rotating it: not our failure
                log.warning("key_busy", api_key=key, detail=str(exc))
                return True

    def _rotate(self, key: str) -> bool:
        """One scheduled rotation with metrics and alerts; True when the new secret is current."""
        ctx = self._ctx
        if ctx.stop.is_set():
            return False
        started = time.monotonic()
        try:
            outcome = ctx.services.rotator.rotate(
                key,
                trigger=Trigger.SCHEDULED,
                actor=ACTOR,
                reason="scheduled rotation",
                lock_wait=timedelta(0),
            )
        except LeaseHeldError:
            raise
        except GracePeriodActiveError as exc:
            # Due again (a manual run, a retry) inside the grace period of the last rotation:
            # postponed, not failed; the key's next check is booked at the end of the grace.
            log.info("rotation_postponed", api_key=key, until=exc.until.isoformat())
            ctx.keys.note_grace(key, exc.until)
            return True
        except RotatorError as exc:
            # The run could not even be recorded as ended (rollback pending, database down...).
            log.error("rotation_error", api_key=key, error=str(exc))
            ctx.metrics.observe_run(key, str(RunStatus.FAILED), time.monotonic() - started)
            self.alert("failed", key, str(exc))
            return False
        for run in outcome.resumed:
            self._after_run(run, None)
        self._after_run(outcome.run, time.monotonic() - started)
        return outcome.ok

    def after_run(self, run: Run, seconds: float | None) -> None:
        """The control API's runs end the same way (rotator.daemon.control)."""
        self._after_run(run, seconds)

    def _after_run(self, run: Run, seconds: float | None) -> None:
        """Count it, alert on failure, and book the deferred revocation of a grace period."""
        metrics = self._ctx.metrics
        if seconds is not None:
            metrics.observe_run(run.api_key, str(run.status), seconds)
        else:
            metrics.rotations.labels(api_key=run.api_key, outcome=str(run.status)).inc()
        if run.status in FAILED_STATUSES:
            kind = "rolled_back" if run.status == RunStatus.ROLLED_BACK else "failed"
            self.alert(kind, run.api_key, run.error or str(run.status), run.id)
        if run.status == RunStatus.AWAITING_REVOKE and run.revoke_after is not None:
            self._schedule_revocation(run)

    # -- per-key facts ----------------------------------------------------------------------

    def refresh(
        self, key: str, *, spread_new: bool = True, age_from_vault: bool = True
    ) -> datetime | None:
        """Re-read the key's facts from the audit log; returns its due time (``facts``)."""
        return self._facts.refresh(key, spread_new=spread_new, age_from_vault=age_from_vault)

    def refresh_many(
        self, keys: list[str], *, spread_new: bool = True, age_from_vault: bool = True
    ) -> None:
        """``refresh`` for many keys from one grouped read of the audit log."""
        self._facts.refresh_many(keys, spread_new=spread_new, age_from_vault=age_from_vault)

    # -- scheduling -------------------------------------------------------------------------

    def schedule(self, key: str, when: datetime | None = None) -> None:
        """(Re)book the key's job at ``when`` (default: its due time)."""
        ctx = self._ctx
        if ctx.stop.is_set() or not ctx.jobs.started:
            return
        if ctx.keys.first_seen(key) is None:
            return  # discovery dropped it meanwhile
        ctx.jobs.check_at(key, when or ctx.keys.due(key) or ctx.clock(), self.check)

    def _schedule_revocation(self, run: Run, at: datetime | None = None) -> None:
        ctx = self._ctx
        when = at or run.revoke_after
        if not ctx.jobs.started or ctx.stop.is_set() or when is None:
            return
        ctx.jobs.revoke_at(run.id, run.api_key, when, self.revoke_due)

    def revoke_due(self) -> None:
        """Revoke old secrets whose grace period has passed (the durable deferred step)."""
        ctx = self._ctx
        now = ctx.clock()
        try:
            waiting = ctx.services.audit.awaiting_revoke()
        except RotatorError as exc:
            log.error("revocations_unreadable", error=str(exc))
            return
        for run in waiting:
            if ctx.stop.is_set():
                return
            if run.revoke_after is None or run.revoke_after > now:
                self._schedule_revocation(run)  # re-armed after a restart, or another's run
                continue
            with ctx.keys.guard(run.api_key, wait=False) as got:
                if not got:  # the key's own job is busy with it: come back soon
                    self._schedule_revocation(run, at=now + self._recheck)
                    continue
                self._revoke(run, now)

    def _revoke(self, run: Run, now: datetime) -> None:
        try:
            done = self._ctx.services.rotator.complete_revocation(run)
            log.info(
                "revocation_completed", api_key=run.api_key, run_id=run.id, status=str(done.status)
            )
        except LeaseHeldError:
            self._schedule_revocation(run, at=now + self._recheck)
        except RotatorError as exc:
            log.error("revocation_failed", api_key=run.api_key, error=str(exc))
            self.alert("failed", run.api_key, f"revoking the old secret failed: {exc}", run.id)
        except Exception as exc:  # never let one key's bug escape the job
            log.exception("revocation_crashed", api_key=run.api_key)
            self.quarantine(run.api_key, f"its revocation crashed: {type(exc).__name__}")

    # -- the managed set --------------------------------------------------------------------

    def discover(self, *, initial: bool = False) -> None:
        """Bring the managed keys in line with the account: new keys scheduled, gone ones not."""
        ctx = self._ctx
        now = ctx.clock()
        accounts = self._accounts(initial=initial)
        if accounts is None:
            return  # keep what we have; try again next time
        gone, new = ctx.keys.replace(accounts, now)
        for key in gone:
            ctx.metrics.remove_key(key)
            ctx.jobs.drop_check(key)
        if ctx.jobs.started:
            self.refresh_many(new)  # every due time first, so the primary sees the subaccounts due
            for key in new:
                self.schedule(key)
        if gone or new:
            log.info("keys_changed", added=sorted(new), removed=sorted(gone))

    def _accounts(self, *, initial: bool) -> list[Account] | None:
        """The account's keys; at start-up, when they cannot be listed, the ones last recorded."""
        ctx = self._ctx
        try:
            found = ctx.discovery.discover()
            for key in found.quarantined:
                self.quarantine(key, "Vonage listed it with an invalid API key")
            return found.accounts
        except RotatorError as exc:
            log.error("discovery_failed", error=str(exc))
            if not initial:
                return None
        try:
            known = ctx.discovery.recorded_keys() | {ctx.primary}
        except RotatorError:
            known = {ctx.primary}
        return [Account(api_key=k, primary=k == ctx.primary) for k in sorted(known)]

    def housekeeping(self) -> None:
        """Deferred revocations, and state/metrics refreshed for runs other replicas did."""
        ctx = self._ctx
        self.revoke_due()
        self._holding.note_pauses(ctx.clock())
        stale = self._facts.stale_keys()
        if stale is None:
            self.refresh_many(ctx.keys.names())
        for key in ctx.keys.names():
            if ctx.stop.is_set():
                return
            try:
                if stale is not None and key in stale:
                    self.refresh(key)
            except RotatorError as exc:
                ctx.keys.note_error(key, str(exc))
            if ctx.jobs.check_missing(key) and not ctx.keys.is_running(key):
                self.schedule(key)  # a safety net: every key always has its job

    def quarantine(self, key: str, why: str) -> None:
        """Skip a key that cannot be handled: shown in status and metrics, alerted once."""
        ctx = self._ctx
        if not ctx.keys.quarantine(key, why):
            return
        log.error("key_quarantined", api_key=key, why=why)
        ctx.metrics.quarantined.set(len(ctx.keys.quarantined()))
        self.alert("quarantined", key, f"skipped until restart: {why}")

    def alert(self, kind: str, key: str, message: str, run_id: str | None = None) -> None:
        try:
            self._ctx.notifier.alert(kind, key, message, run_id=run_id)
        except Exception:  # an alert must never break the daemon
            log.exception("alert_crashed", kind=kind, api_key=key)


__all__ = ["ACTOR", "Context", "Work"]
