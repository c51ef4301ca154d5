"""The rotation runner: one API key, end to end, crash-safe, verified and audited.

    lock → (resume unfinished) → inspect → make room → generate → stage (Vault, pending)
         → create (Vonage) → verify (get-balance) → promote (Vault, current) → revoke old

A new secret's value is in Vault before Vonage sees it, so a crash never loses it; the current
record changes only after the new secret has authenticated, so a failure never locks anyone out;
every step appends an audit event. The steps are a table (``rotator.steps``) this module walks
under the key's lease; failure, rollback and resuming a run a crash left unfinished are
``rotator.recovery``'s (``rotator.protocol.resume`` decides from what Vault and Vonage show).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from rotator import protocol, recovery
from rotator.audit import AuditLog, Run, RunStatus, Trigger
from rotator.clock import iso, utcnow
from rotator.config import Config
from rotator.errors import (
    GracePeriodActiveError,
    LeaseHeldError,
    RotatorError,
    VonageSecretLimitError,
)
from rotator.lease import Lease, LeaseInfo, Leases
from rotator.primary import PrimarySecret
from rotator.protocol import Observed
from rotator.runio import (
    Deps,
    Known,
    RunIO,
    RunRecord,
    no_boundary,
    promised_by,
    revoke_after_of,
    supersede,
)
from rotator.steps import grace_error, revoke_now, walk
from rotator.vault import RotationState, VaultStore
from rotator.vonage import VonageClient

log = structlog.get_logger("rotator.rotation")


@dataclass(frozen=True)
class Outcome:
    run: Run
    resumed: list[Run]

    @property
    def ok(self) -> bool:
        return self.run.status in {RunStatus.SUCCEEDED, RunStatus.AWAITING_REVOKE}


class Rotator:
    """Rotates keys of one Vonage account. Thread-safe across keys (leases serialize a key).

    ``boundary`` is called with ``before:<step>`` and ``after:<step>`` around every step: a
    no-op in production; the CLI installs the crash tests' pause points
    (``rotator.devtools.pausepoints``) there.
    """

    def __init__(
        self,
        config: Config,
        *,
        vault: VaultStore,
        vonage: VonageClient,
        audit: AuditLog,
        leases: Leases,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        boundary: Callable[[str], None] = no_boundary,
    ) -> None:
        self.config = config
        parts = Deps(config=config, vault=vault, vonage=vonage, audit=audit, leases=leases)
        self.deps = replace(
            parts,
            sleep=sleep,
            clock=clock,
            boundary=boundary,
            primary_secret=PrimarySecret(vault, config.vonage.primary_api_key),
        )
        self.audit, self.leases, self.vault = audit, leases, vault

    @property
    def primary(self) -> str:
        return self.config.vonage.primary_api_key

    def rotate(
        self,
        api_key: str,
        *,
        trigger: Trigger = Trigger.MANUAL,
        actor: str,
        reason: str | None = None,
        emergency: bool = False,
        lock_wait: timedelta | None = None,
        on_wait: Callable[[LeaseInfo], None] | None = None,
        grace_wait: timedelta = timedelta(0),
        on_grace: Callable[[datetime], None] | None = None,
        on_start: Callable[[Run], None] | None = None,
    ) -> Outcome:
        """Rotate ``api_key`` once (after finishing any run a crash left behind).

        A non-emergency rotation never revokes a previous secret inside its grace period: it
        raises ``GracePeriodActiveError`` naming when it can run, or, when that is within
        ``grace_wait``, sleeps until then (the lease released meanwhile) and runs.
        ``on_start`` is told the run as soon as it is recorded (the control API's 202).
        """
        wait = self.config.rotation.lock_wait if lock_wait is None else lock_wait
        deadline = utcnow() + grace_wait
        resumed: list[Run] = []
        while True:
            try:
                return self._rotate_once(
                    api_key, trigger, actor, reason, emergency, wait, on_wait, resumed, on_start
                )
            except GracePeriodActiveError as exc:
                if exc.until > deadline:
                    raise
                if on_grace is not None:
                    on_grace(exc.until)
                self.deps.sleep(max(0.0, (exc.until - utcnow()).total_seconds()) + 0.01)

    def _rotate_once(
        self,
        api_key: str,
        trigger: Trigger,
        actor: str,
        reason: str | None,
        emergency: bool,
        wait: timedelta,
        on_wait: Callable[[LeaseInfo], None] | None,
        resumed: list[Run],
        on_start: Callable[[Run], None] | None = None,
    ) -> Outcome:
        found: list[list[Run]] = []  # the key's open runs, read as its lease is taken
        lease = self.leases.acquire(
            api_key,
            wait=wait,
            on_wait=on_wait,
            within=lambda conn: found.append(self.audit.open_runs(api_key, conn=conn)),
        )
        structlog.contextvars.bind_contextvars(api_key=api_key)
        released = False
        try:
            awaiting = self._settle(api_key, lease, resumed, found[-1])
            state = None if emergency else self._refuse_inside_grace(api_key, awaiting)
            named: list[Lease] = []
            run = self.audit.start_run(
                api_key=api_key,
                trigger=Trigger.EMERGENCY if emergency else trigger,
                actor=actor,
                owner=self.leases.owner,
                reason=reason,
                emergency=emergency,
                # fenced: the run is recorded only while this process holds the key's lease
                within=lambda conn, run_id: named.append(
                    self.leases.renew(lease, run_id=run_id, conn=conn)
                ),
            )
            lease = named[0]
            if on_start is not None:
                on_start(run)
            ended, released = self._run(run, lease, Known(state=state, awaiting=awaiting))
            return Outcome(ended, resumed)
        finally:
            structlog.contextvars.unbind_contextvars("api_key", "run_id", "step")
            if not released:
                self._release(lease)

    def _settle(self, api_key: str, lease: Lease, resumed: list[Run], runs: list[Run]) -> list[Run]:
        """Finish or roll back every run of the key a crash left running (into ``resumed``);
        the key's runs awaiting revocation then. ``runs``: the key's open runs, read as the
        lease was taken (read again only when some were left running)."""
        unfinished = [run for run in runs if run.status == RunStatus.RUNNING]
        if unfinished:
            resumed += [recovery.resume_run(self.deps, run, lease) for run in unfinished]
            runs = self.audit.open_runs(api_key)
        return [run for run in runs if run.status == RunStatus.AWAITING_REVOKE]

    def grace_until(self, api_key: str, *, emergency: bool = False) -> datetime | None:
        """When the key's previous secret's grace period ends, if it has not yet: Vault's
        ``previous.revoke_after``, or a run awaiting revocation (its old secret may have had no
        value in Vault, yet applications configured by hand may use it until then)."""
        state = self.vault.read_state(api_key)
        return _grace_until(state, self.audit.awaiting_revoke(api_key), emergency=emergency)

    def _refuse_inside_grace(self, api_key: str, awaiting: list[Run]) -> RotationState:
        """Vault's state record of the key, read under its lease, unless a grace period
        refuses the rotation (``GracePeriodActiveError``); the run's inspect step uses it."""
        state = self.vault.read_state(api_key)
        until = _grace_until(state, awaiting, emergency=False)
        if until is not None:
            log.info("rotation_postponed", api_key=api_key, grace_until=iso(until))
            raise grace_error(api_key, until)
        return state

    def resume_unfinished(self, api_key: str) -> list[Run]:
        """Finish or roll back every run of ``api_key`` a crash left running."""
        if not self.audit.unfinished_runs(api_key):
            return []
        lease = self.leases.acquire(api_key)
        try:
            return self._resume_all(api_key, lease)
        finally:
            self._release(lease)

    def complete_revocation(self, run: Run) -> Run:
        """Revoke the old secret of a run whose grace period has passed (the deferred step)."""
        lease = self.leases.acquire(run.api_key)
        try:
            current = self.audit.get_run(run.id)
            if current.status != RunStatus.AWAITING_REVOKE:
                return current
            io = RunIO(self.deps, current, lease)
            rec = replace(RunRecord.begin(self.config, current), emergency=False)
            record = self.vault.read_current(run.api_key)
            if record is None or record.secret_id != current.new_secret_id:
                return supersede(self.deps, current, "a later rotation replaced its secret")
            revoke_now(io, rec)
            return self.audit.finish_run(run.id, RunStatus.SUCCEEDED)
        finally:
            self._release(lease)

    def _resume_all(self, api_key: str, lease: Lease) -> list[Run]:
        return [
            recovery.resume_run(self.deps, run, lease)
            for run in self.audit.unfinished_runs(api_key)
        ]

    def _run(self, run: Run, lease: Lease, known: Known) -> tuple[Run, bool]:
        """Walk the step table once; on an error, recovery ends the run. The run as it ended,
        and whether its end released the lease (a run that went all the way does)."""
        structlog.contextvars.bind_contextvars(run_id=run.id)
        log.info("rotation_started", trigger=run.trigger, emergency=run.emergency)
        io: RunIO | None = None
        try:
            # named at the start; the end of the walk releases the lease
            io = RunIO(self.deps, run, lease, named=True, known=known, release=True)
            return walk(io, RunRecord.begin(self.config, run)), io.released
        except LeaseHeldError:
            raise  # fenced out: touch nothing more; the new holder resumes this run
        except RotatorError as exc:
            return recovery.fail(self.deps, run, io, exc), io is not None and io.released

    def _release(self, lease: Lease) -> None:
        try:
            self.leases.release(lease)
        except RotatorError as exc:
            log.warning("lease_release_failed", error=str(exc))


def _grace_until(state: RotationState, awaiting: list[Run], *, emergency: bool) -> datetime | None:
    seen = Observed(
        vonage_ids=(),
        record_exists=False,
        record_secret_id=None,
        previous_id=state.previous.secret_id if state.previous else None,
        previous_revoke_after=revoke_after_of(state),
        promised_until=promised_by(awaiting),
    )
    return protocol.grace_until(seen, now=utcnow(), emergency=emergency)


__all__ = ["Outcome", "Rotator", "VonageSecretLimitError"]
