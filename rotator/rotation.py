"""The rotation runner: one API key, end to end, crash-safe, verified and audited.

    lock → (resume unfinished) → inspect → make room → generate → stage (Vault, pending)
         → create (Vonage) → verify (get-balance) → promote (Vault, current) → revoke old

A new secret's value is in Vault before Vonage sees it, so a crash never loses it; the current
record changes only after the new secret has authenticated, so a failure never locks anyone out;
every step appends an audit event. A run a crash left unfinished is finished or rolled back from
what Vault and Vonage show, by the next run of the key (``rotator.protocol.resume``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog

from rotator import policy, testhooks
from rotator.audit import AuditLog, Run, RunStatus, Trigger, utcnow
from rotator.config import Config
from rotator.errors import (
    LeaseHeldError,
    NoWorkingSecretError,
    RotationError,
    RotatorError,
    UnidentifiedSecretError,
    VaultConflictError,
    VerificationFailedError,
    VonageAuthError,
    VonageError,
    VonageLastSecretError,
    VonageNotFoundError,
    VonageProtocolError,
    VonageSecretLimitError,
    VonageServerError,
    VonageTransportError,
)
from rotator.lease import Lease, LeaseInfo, Leases
from rotator.protocol import (
    Identified,
    Observed,
    Resume,
    ResumeState,
    Step,
    Unidentified,
    created_candidates,
    identify,
    make_room,
    resume,
    verify_backoff,
)
from rotator.secret import Credentials, Secret
from rotator.vault import CurrentRecord, RotationState, StagedSecret, VaultStore, utc_now_text
from rotator.vonage import SecretInfo, VonageClient

log = structlog.get_logger("rotator.rotation")
T = TypeVar("T")
CREATE_ATTEMPTS = 3


@dataclass
class StepRecord:
    """What one step reports to the audit log; filled in by the step's body."""

    secret_id: str | None = None
    request_id: str | None = None
    vault_version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"


@dataclass
class RunContext:
    run: Run
    lease: Lease
    api_key: str
    emergency: bool
    grace_period: timedelta
    admin: Credentials  # who manages the key's secrets (the primary)
    listed: list[SecretInfo] = field(default_factory=list)
    record: CurrentRecord | None = None
    state: RotationState = field(default_factory=RotationState)
    old_id: str | None = None
    new_secret: Secret | None = None
    new_id: str | None = None
    staged: bool = False  # a pending secret of this run is (or may be) in Vault
    only_secret_left: bool = False  # rollback found the new secret is the key's last one


@dataclass(frozen=True)
class Outcome:
    run: Run
    resumed: list[Run]

    @property
    def ok(self) -> bool:
        return self.run.status in {RunStatus.SUCCEEDED, RunStatus.AWAITING_REVOKE}


class Rotator:
    """Rotates keys of one Vonage account. Thread-safe across keys (leases serialize a key)."""

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
    ) -> None:
        self.config = config
        self.vault = vault
        self.vonage = vonage
        self.audit = audit
        self.leases = leases
        self._sleep = sleep
        self._clock = clock

    @property
    def primary(self) -> str:
        return self.config.vonage.primary_api_key

    # -- entry points -----------------------------------------------------------------------

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
    ) -> Outcome:
        """Rotate ``api_key`` once (after finishing any run a crash left behind)."""
        wait = self.config.rotation.lock_wait if lock_wait is None else lock_wait
        lease = self.leases.acquire(api_key, wait=wait, on_wait=on_wait)
        structlog.contextvars.bind_contextvars(api_key=api_key)
        try:
            resumed = [self._resume(run, lease) for run in self.audit.unfinished_runs(api_key)]
            run = self.audit.start_run(
                api_key=api_key,
                trigger=Trigger.EMERGENCY if emergency else trigger,
                actor=actor,
                owner=self.leases.owner,
                reason=reason,
                emergency=emergency,
            )
            lease = self.leases.renew(lease, run_id=run.id)
            return Outcome(self._run(run, lease, emergency=emergency), resumed)
        finally:
            structlog.contextvars.unbind_contextvars("api_key", "run_id", "step")
            self._release(lease)

    def resume_unfinished(self, api_key: str) -> list[Run]:
        """Finish or roll back every run of ``api_key`` a crash left running."""
        if not self.audit.unfinished_runs(api_key):
            return []
        lease = self.leases.acquire(api_key)
        try:
            return [self._resume(run, lease) for run in self.audit.unfinished_runs(api_key)]
        finally:
            self._release(lease)

    def complete_revocation(self, run: Run) -> Run:
        """Revoke the old secret of a run whose grace period has passed (the deferred step)."""
        lease = self.leases.acquire(run.api_key)
        try:
            current = self.audit.get_run(run.id)
            if current.status != RunStatus.AWAITING_REVOKE:
                return current
            ctx = self._context(current, lease, emergency=False)
            ctx.new_id, ctx.old_id = current.new_secret_id, current.old_secret_id
            record = self.vault.read_current(run.api_key)
            if record is None or record.secret_id != current.new_secret_id:
                return self._supersede(current, "a later rotation replaced its secret")
            self._revoke_old(ctx)
            return self.audit.finish_run(run.id, RunStatus.SUCCEEDED)
        finally:
            self._release(lease)

    # -- a forward run ----------------------------------------------------------------------

    def _run(self, run: Run, lease: Lease, *, emergency: bool) -> Run:
        structlog.contextvars.bind_contextvars(run_id=run.id)
        log.info("rotation_started", trigger=run.trigger, emergency=emergency)
        ctx: RunContext | None = None
        try:
            ctx = self._context(run, lease, emergency=emergency)
            self._inspect(ctx)
            self._make_room(ctx)
            self._generate(ctx)
            self._stage(ctx)
            self._create(ctx)
            self._verify(ctx)
            self._promote(ctx)
            return self._finish(ctx)
        except LeaseHeldError:
            raise  # fenced out: touch nothing more; the new holder resumes this run
        except RotatorError as exc:
            return self._fail(run, ctx, exc)

    def _context(self, run: Run, lease: Lease, *, emergency: bool) -> RunContext:
        override = self.config.override_for(run.api_key)
        grace = self.config.rotation.grace_period
        if override is not None and override.grace_period is not None:
            grace = override.grace_period
        return RunContext(
            run=run,
            lease=lease,
            api_key=run.api_key,
            emergency=emergency,
            grace_period=timedelta(0) if emergency else grace,
            admin=self._admin_credentials(),
        )

    def _admin_credentials(self) -> Credentials:
        record = self.vault.read_current(self.primary)
        if record is None:
            raise NoWorkingSecretError(
                f"no secret for the primary account {self.primary} at "
                f"{self.vault.describe(self.primary)}",
                hint=f"write the primary's api_key and api_secret to "
                f"{self.vault.describe(self.primary)} (see README, 'First run')",
            )
        return Credentials(self.primary, record.api_secret)

    def _inspect(self, ctx: RunContext) -> None:
        with self._step(ctx, Step.INSPECT) as rec:
            reply = self._as_admin(ctx, lambda admin: self.vonage.list_secrets(admin, ctx.api_key))
            ctx.listed, rec.request_id = reply.secrets, reply.request_id
            ctx.record = self.vault.read_current(ctx.api_key)
            ctx.state = self.vault.read_state(ctx.api_key)
            rec.vault_version = ctx.record.version if ctx.record else None
            rec.detail = {
                "vonage_secret_ids": [s.id for s in ctx.listed],
                "vault_secret_id": ctx.record.secret_id if ctx.record else None,
                "vault_fingerprint": ctx.record.api_secret.fingerprint() if ctx.record else None,
            }

    def _observed(self, ctx: RunContext) -> Observed:
        ids = tuple(s.id for s in ctx.listed)
        record = ctx.record
        authenticates: bool | None = None
        if record is not None and record.secret_id not in ids:
            authenticates = self._authenticates(Credentials(ctx.api_key, record.api_secret))
        previous = ctx.state.previous.secret_id if ctx.state.previous else None
        return Observed(
            vonage_ids=ids,
            record_exists=record is not None,
            record_secret_id=record.secret_id if record else None,
            record_authenticates=authenticates,
            previous_id=previous,
            adopted_id=ctx.state.adopted_id,
        )

    def _make_room(self, ctx: RunContext) -> None:
        with self._step(ctx, Step.MAKE_ROOM) as rec:
            seen = self._observed(ctx)
            who: Identified = identify(seen)
            try:
                plan = make_room(
                    seen,
                    who,
                    revoke_older_if_unidentified=self.config.rotation.on_unidentified
                    == "revoke_older",
                )
            except Unidentified as exc:
                raise UnidentifiedSecretError(
                    f"{ctx.api_key} has {exc}; rotator will not guess which one applications use"
                ) from None
            ctx.old_id = plan.old_id
            self.audit.update_run(ctx.run.id, old_secret_id=plan.old_id)
            rec.detail = {"current_id": who.current_id, "old_id": plan.old_id}
            if not plan.revoke:
                rec.outcome = "skipped"
                return
            rec.detail.update(revoked=list(plan.revoke), reason=plan.reason)
            for secret_id in plan.revoke:
                rec.request_id = self._as_admin(
                    ctx, functools.partial(self._revoke, ctx, secret_id=secret_id)
                )
            ctx.listed = [s for s in ctx.listed if s.id not in plan.revoke]
            if ctx.state.previous and ctx.state.previous.secret_id in plan.revoke:
                ctx.state = self.vault.write_state(
                    ctx.api_key,
                    pending=ctx.state.pending,
                    previous=None,
                    adopted_id=ctx.state.adopted_id,
                    cas=ctx.state.version,
                )
                rec.vault_version = ctx.state.version
            self._close_superseded(ctx, {s.id for s in ctx.listed})

    def _generate(self, ctx: RunContext) -> None:
        with self._step(ctx, Step.GENERATE) as rec:
            override = self.config.override_for(ctx.api_key)
            length = (override.secret_length if override else None) or (
                self.config.rotation.secret_length
            )
            ctx.new_secret = policy.generate(length)
            rec.detail = {"length": length, "fingerprint": ctx.new_secret.fingerprint()}

    def _stage(self, ctx: RunContext) -> None:
        assert ctx.new_secret is not None
        with self._step(ctx, Step.STAGE) as rec:
            pending = StagedSecret(
                secret=ctx.new_secret, secret_id=None, run_id=ctx.run.id, staged_at=utc_now_text()
            )
            ctx.staged = True
            ctx.state = self.vault.write_state(
                ctx.api_key,
                pending=pending,
                previous=ctx.state.previous,
                adopted_id=ctx.state.adopted_id,
                cas=ctx.state.version,
            )
            rec.vault_version = ctx.state.version

    def _create(self, ctx: RunContext) -> None:
        assert ctx.new_secret is not None
        with self._step(ctx, Step.CREATE) as rec:
            before = {s.id for s in ctx.listed}
            for attempt in range(1, CREATE_ATTEMPTS + 1):
                try:
                    reply = self._as_admin(
                        ctx,
                        functools.partial(
                            self.vonage.create_secret, api_key=ctx.api_key, secret=ctx.new_secret
                        ),
                    )
                    assert reply.created is not None
                    ctx.new_id, rec.request_id = reply.created.id, reply.request_id
                    break
                except (VonageTransportError, VonageServerError, VonageProtocolError) as exc:
                    # The POST may or may not have applied (an unreadable 200 did): find out by
                    # listing, never re-POST blindly (a duplicate would take the last slot).
                    found = self._find_created(ctx, before)
                    rec.detail["ambiguous_attempts"] = attempt
                    if found is not None:
                        ctx.new_id = found
                        rec.detail["reconciled"] = True
                        break
                    if attempt == CREATE_ATTEMPTS:
                        raise exc
                    self._sleep(verify_backoff(attempt))
            assert ctx.new_id is not None
            rec.secret_id = ctx.new_id
            self.audit.update_run(ctx.run.id, new_secret_id=ctx.new_id)
            pending = ctx.state.pending
            assert pending is not None
            ctx.state = self.vault.write_state(
                ctx.api_key,
                pending=pending.with_id(ctx.new_id),
                previous=ctx.state.previous,
                adopted_id=ctx.state.adopted_id,
                cas=ctx.state.version,
            )
            rec.vault_version = ctx.state.version

    def _find_created(self, ctx: RunContext, before: set[str]) -> str | None:
        reply = self._as_admin(ctx, lambda admin: self.vonage.list_secrets(admin, ctx.api_key))
        listed = reply.secrets
        candidates = created_candidates(
            [(s.id, s.created_at) for s in listed], before, ctx.run.started_at
        )
        if len(candidates) > 1:
            raise RotationError(
                f"{ctx.api_key} gained {len(candidates)} unknown secrets during the rotation; "
                "cannot tell which one rotator created",
                hint="run `rotator rotate --emergency` to revoke every secret rotator did not make",
            )
        return candidates[0] if candidates else None

    def _verify(self, ctx: RunContext) -> None:
        assert ctx.new_secret is not None
        with self._step(ctx, Step.VERIFY) as rec:
            creds = Credentials(ctx.api_key, ctx.new_secret)
            timeout = self.config.rotation.verify_timeout.total_seconds()
            deadline = self._clock() + timeout
            attempt, last_error = 0, ""
            while True:
                attempt += 1
                try:
                    rec.request_id = self.vonage.get_balance(creds, retry=False).request_id
                    rec.detail = {"attempts": attempt}
                    return
                except VonageError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                ctx.lease = self.leases.renew(ctx.lease)
                wait = verify_backoff(attempt)
                if self._clock() + wait > deadline:
                    break
                self._sleep(wait)
            rec.detail = {"attempts": attempt}
            raise VerificationFailedError(
                f"the new secret of {ctx.api_key} did not authenticate within {timeout:g}s "
                f"({attempt} attempts; last: {last_error})"
            )

    def _promote(self, ctx: RunContext) -> None:
        assert ctx.new_secret is not None
        assert ctx.new_id is not None
        with self._step(ctx, Step.PROMOTE) as rec:
            pending = ctx.state.pending
            assert pending is not None
            previous = None
            if ctx.record is not None and ctx.old_id is not None:
                previous = StagedSecret(
                    secret=ctx.record.api_secret,
                    secret_id=ctx.old_id,
                    run_id=ctx.run.id,
                    staged_at=utc_now_text(),
                    revoke_after=_text(utcnow() + ctx.grace_period),
                )
            # 1: keep the old value as "previous" while the new one is still pending, so a crash
            # between the writes below always leaves both values in Vault.
            ctx.state = self.vault.write_state(
                ctx.api_key,
                pending=pending,
                previous=previous,
                adopted_id=ctx.state.adopted_id,
                cas=ctx.state.version,
            )
            # 2: publish the new secret as current.
            cas = ctx.record.version if ctx.record else 0
            try:
                version = self.vault.write_current(
                    ctx.api_key, ctx.new_secret, ctx.new_id, cas=cas, run_id=ctx.run.id
                )
            except VaultConflictError:
                again = self.vault.read_current(ctx.api_key)
                if again is None or again.secret_id != ctx.new_id:
                    raise
                version = again.version
            # 3: read it back: what applications will read must be exactly the new secret.
            check = self.vault.read_current(ctx.api_key)
            if check is None or check.secret_id != ctx.new_id or check.api_secret != ctx.new_secret:
                raise RotationError(f"Vault read-back of {ctx.api_key} does not match the write")
            ctx.record = check
            rec.vault_version, rec.secret_id = version, ctx.new_id
            self.audit.update_run(ctx.run.id, new_secret_id=ctx.new_id)
            # 4: the pending copy (and any adoption: the record now names the current secret)
            # is no longer needed.
            ctx.state = self.vault.write_state(
                ctx.api_key, pending=None, previous=previous, cas=ctx.state.version
            )
            ctx.staged = False

    def _finish(self, ctx: RunContext) -> Run:
        if ctx.grace_period > timedelta(0) and ctx.old_id is not None:
            revoke_after = utcnow() + ctx.grace_period
            self.audit.record(
                run_id=ctx.run.id,
                api_key=ctx.api_key,
                step=Step.REVOKE,
                outcome="deferred",
                started_at=utcnow(),
                secret_id=ctx.old_id,
                detail={"revoke_after": _text(revoke_after)},
            )
            log.info("rotation_promoted", revoke_after=_text(revoke_after))
            return self.audit.finish_run(
                ctx.run.id, RunStatus.AWAITING_REVOKE, revoke_after=revoke_after
            )
        self._revoke_old(ctx)
        log.info("rotation_succeeded", new_secret_id=ctx.new_id)
        return self.audit.finish_run(ctx.run.id, RunStatus.SUCCEEDED)

    def _revoke_old(self, ctx: RunContext) -> None:
        """Revoke the old secret (emergency: every secret but the new one); confirm by listing."""
        assert ctx.new_id is not None
        with self._step(ctx, Step.REVOKE) as rec:
            record = self.vault.read_current(ctx.api_key)
            if record is None or record.secret_id != ctx.new_id:
                raise RotationError(f"{ctx.api_key}: the new secret is not current in Vault")
            # Rotating the primary: its old secret may be the one being revoked, so use the new.
            # Otherwise the primary's current one, re-read if refused (a concurrent rotation of
            # the primary may revoke it while this step waits out a 429: see _as_admin).
            ctx.admin = (
                Credentials(self.primary, record.api_secret)
                if self._is_primary(ctx)
                else (self._admin_credentials())
            )

            def listing() -> list[SecretInfo]:
                return self._as_admin(
                    ctx, lambda admin: self.vonage.list_secrets(admin, ctx.api_key)
                ).secrets

            if ctx.emergency:
                # Everything but the new secret goes, including any added since inspect.
                listed = listing()
                ids = [s.id for s in listed]
                if ctx.new_id not in ids:
                    raise RotationError(
                        f"{ctx.api_key}: the new secret {ctx.new_id} is not on Vonage"
                    )
                targets = [i for i in ids if i != ctx.new_id]
            else:
                # The old id is known from inspect; the listing below confirms the result.
                targets = [ctx.old_id] if ctx.old_id and ctx.old_id != ctx.new_id else []
            for secret_id in targets:
                # Already gone (a resumed run, or revoked by hand) is fine: the goal holds.
                with suppress(VonageNotFoundError):
                    rec.request_id = self._as_admin(
                        ctx, functools.partial(self._revoke, ctx, secret_id=secret_id)
                    )
            remaining = [s.id for s in listing()]
            rec.detail = {"revoked": targets, "remaining": remaining}
            if ctx.new_id not in remaining:
                raise RotationError(f"{ctx.api_key}: the new secret {ctx.new_id} is not on Vonage")
            leftover = [i for i in remaining if i != ctx.new_id]
            survived = [i for i in targets if i in leftover]
            if (ctx.emergency and leftover) or survived:
                # A DELETE that "succeeded" without effect: keep the old value in Vault (never
                # a secret on Vonage without its value) and leave the run for the next one.
                raise RotationError(
                    f"{ctx.api_key}: secrets {survived or leftover} survived revocation"
                )
            if leftover:
                log.warning("unknown_secret_left", secret_ids=leftover)
            self._close_superseded(ctx, set(remaining))
            state = self.vault.read_state(ctx.api_key)
            if state.previous is not None and state.previous.secret_id not in remaining:
                state = self.vault.write_state(
                    ctx.api_key, pending=state.pending, previous=None, cas=state.version
                )
            rec.vault_version = state.version

    def _close_superseded(self, ctx: RunContext, on_vonage: set[str]) -> None:
        """Runs awaiting revocation whose old secret is gone now are done."""
        for waiting in self.audit.awaiting_revoke(ctx.api_key):
            if waiting.id != ctx.run.id and waiting.old_secret_id not in on_vonage:
                self._supersede(waiting, f"its old secret was revoked by run {ctx.run.id}")

    def _supersede(self, run: Run, why: str) -> Run:
        log.info("run_superseded", superseded_run=run.id, why=why)
        self.audit.record(
            run_id=run.id,
            api_key=run.api_key,
            step=Step.REVOKE,
            outcome="superseded",
            started_at=utcnow(),
            secret_id=run.old_secret_id,
            detail={"why": why},
        )
        return self.audit.finish_run(run.id, RunStatus.SUCCEEDED)

    # -- failure and rollback ---------------------------------------------------------------

    def _fail(self, run: Run, ctx: RunContext | None, exc: RotatorError) -> Run:
        """End a run that hit an error: nothing changed → failed; new secret made → rolled back;
        new secret already current → left running for the next run to finish (never undone)."""
        error = _describe(exc)
        log.error("rotation_failed", error=error)
        if ctx is None or (not ctx.staged and ctx.new_id is None):
            return self.audit.finish_run(run.id, RunStatus.FAILED, error=error)
        try:
            current = self.vault.read_current(ctx.api_key)
            if current is not None and ctx.new_id and current.secret_id == ctx.new_id:
                self.audit.update_run(run.id, error=f"{error}; promoted, revocation pending")
                raise exc
            self._rollback(ctx, reason=error)
            if ctx.only_secret_left:
                return self._promote_last_secret(ctx, error)
        except LeaseHeldError:
            raise
        except RotatorError as rollback_exc:
            if rollback_exc is exc:
                raise
            # Vault or Vonage is down: leave the run `running`; the next run resumes it.
            log.error("rollback_incomplete", error=_describe(rollback_exc))
            self.audit.update_run(run.id, error=f"{error}; rollback pending: {rollback_exc}")
            raise exc from rollback_exc
        return self.audit.finish_run(run.id, RunStatus.ROLLED_BACK, error=error)

    def _promote_last_secret(self, ctx: RunContext, error: str) -> Run:
        """The key's every other secret is gone: the new one becomes current even unverified."""
        log.warning("promoting_only_secret", error=error)
        if ctx.new_secret is None:
            raise RotationError(
                f"{ctx.api_key}: its only secret on Vonage is one whose value rotator no longer "
                "holds",
                hint="create a new secret in the Vonage dashboard and `rotator adopt` it",
            )
        self._promote(ctx)
        run = self._finish(ctx)
        self.audit.update_run(
            run.id, error=f"{error}; the new secret was the key's only one, so it was promoted"
        )
        return self.audit.get_run(run.id)

    def _rollback(self, ctx: RunContext, *, reason: str) -> None:
        """Undo a staged/created secret: revoke it on Vonage, then drop its value from Vault."""
        with self._step(ctx, Step.ROLLBACK) as rec:
            rec.detail = {"reason": reason[:300]}
            ctx.admin = self._admin_credentials()
            if ctx.new_id is None and ctx.staged:
                before = {s.id for s in ctx.listed} | {i for i in (ctx.old_id,) if i}
                try:
                    ctx.new_id = self._find_created(ctx, before)
                except RotationError:
                    ctx.new_id = None
            if ctx.new_id is not None:
                rec.secret_id = ctx.new_id
                try:
                    rec.request_id = self._as_admin(
                        ctx, functools.partial(self._revoke, ctx, secret_id=ctx.new_id)
                    )
                except VonageNotFoundError:
                    pass
                except VonageLastSecretError:
                    # Everything else is gone: the new secret is all the key has, so it must
                    # become current (revoking it would lock everyone out).
                    rec.outcome = "promote_instead"
                    ctx.only_secret_left = True
                    return
            state = self.vault.read_state(ctx.api_key)
            if state.pending is not None and state.pending.run_id == ctx.run.id:
                state = self.vault.write_state(
                    ctx.api_key,
                    pending=None,
                    previous=state.previous,
                    adopted_id=state.adopted_id,
                    cas=state.version,
                )
            rec.vault_version = state.version
            ctx.staged = False

    # -- resuming a crashed run -------------------------------------------------------------

    def _resume(self, run: Run, lease: Lease) -> Run:
        structlog.contextvars.bind_contextvars(run_id=run.id)
        lease = self.leases.renew(lease, run_id=run.id)
        ctx = self._context(run, lease, emergency=run.emergency)
        ctx.old_id, ctx.new_id = run.old_secret_id, run.new_secret_id
        try:
            with self._step(ctx, Step.RESUME) as rec:
                self._inspect_quiet(ctx)
                pending = ctx.state.pending
                mine = pending is not None and pending.run_id == run.id
                action, new_id = resume(
                    ResumeState(
                        vonage_ids=tuple(s.id for s in ctx.listed),
                        record_secret_id=ctx.record.secret_id if ctx.record else None,
                        pending_of_run=mine,
                        pending_secret_id=pending.secret_id if mine and pending else None,
                        run_new_secret_id=run.new_secret_id,
                    )
                )
                rec.detail = {"action": str(action), "new_secret_id": new_id}
                ctx.staged = mine
                if mine and pending is not None:
                    ctx.new_secret = pending.secret
                if action is Resume.FIND_CREATED:
                    known = {i for i in (ctx.old_id,) if i}
                    if ctx.state.previous and ctx.state.previous.secret_id:
                        known.add(ctx.state.previous.secret_id)
                    if ctx.record and ctx.record.secret_id:
                        known.add(ctx.record.secret_id)
                    new_id = self._find_created(ctx, known)
                    action = Resume.VERIFY if new_id else Resume.ROLLBACK
                    rec.detail.update(action=str(action), new_secret_id=new_id)
                ctx.new_id = new_id
            log.info("resuming_run", action=str(action))
            if action is Resume.ABANDON:
                return self.audit.finish_run(
                    run.id, RunStatus.ROLLED_BACK, error="interrupted before any change; resumed"
                )
            if action is Resume.ROLLBACK:
                if new_id is not None:
                    ctx.staged = True
                self._rollback(ctx, reason="resumed after interruption")
                if ctx.only_secret_left:
                    return self._promote_last_secret(ctx, "resumed after interruption")
                return self.audit.finish_run(
                    run.id, RunStatus.ROLLED_BACK, error="interrupted; rolled back on resume"
                )
            if action is Resume.VERIFY:
                assert new_id is not None
                self.audit.update_run(run.id, new_secret_id=new_id)
                if pending is not None and pending.secret_id is None:
                    ctx.state = self.vault.write_state(
                        ctx.api_key,
                        pending=pending.with_id(new_id),
                        previous=ctx.state.previous,
                        adopted_id=ctx.state.adopted_id,
                        cas=ctx.state.version,
                    )
                self._verify(ctx)
                self._promote(ctx)
                return self._finish(ctx)
            # FINISH_PROMOTION: current is already the new secret; tidy Vault, then revoke.
            assert new_id is not None
            self.audit.update_run(run.id, new_secret_id=new_id)
            if mine:
                ctx.state = self.vault.write_state(
                    ctx.api_key, pending=None, previous=ctx.state.previous, cas=ctx.state.version
                )
            ctx.staged = False
            return self._finish(ctx)
        except LeaseHeldError:
            raise
        except RotatorError as exc:
            return self._fail(run, ctx, exc)
        finally:
            structlog.contextvars.unbind_contextvars("run_id")

    def _inspect_quiet(self, ctx: RunContext) -> None:
        reply = self._as_admin(ctx, lambda admin: self.vonage.list_secrets(admin, ctx.api_key))
        ctx.listed = reply.secrets
        ctx.record = self.vault.read_current(ctx.api_key)
        ctx.state = self.vault.read_state(ctx.api_key)

    # -- helpers ----------------------------------------------------------------------------

    def _is_primary(self, ctx: RunContext) -> bool:
        return ctx.api_key == self.primary

    def _as_admin(self, ctx: RunContext, call: Callable[[Credentials], T]) -> T:
        """Call Vonage as the primary. If refused, re-read the primary's secret and retry once:
        a rotation of the primary running alongside may have replaced (and revoked) the one this
        run read at its start. A 401 means nothing was applied, so the retry is safe."""
        try:
            return call(ctx.admin)
        except VonageAuthError:
            fresh = self._admin_credentials()
            if fresh == ctx.admin:
                raise
            log.info("primary_secret_changed", detail="retrying with the primary's new secret")
            ctx.admin = fresh
            return call(fresh)

    def _revoke(self, ctx: RunContext, admin: Credentials, secret_id: str) -> str | None:
        log.info("revoking_secret", secret_id=secret_id)
        return self.vonage.revoke_secret(admin, ctx.api_key, secret_id).request_id

    def _authenticates(self, creds: Credentials) -> bool:
        try:
            self.vonage.get_balance(creds)
        except VonageAuthError:
            return False
        return True

    def _release(self, lease: Lease) -> None:
        try:
            self.leases.release(lease)
        except RotatorError as exc:
            log.warning("lease_release_failed", error=str(exc))

    @contextmanager
    def _step(self, ctx: RunContext, step: Step) -> Iterator[StepRecord]:
        """Run one step: renew the lease (fencing), bind logs, audit the outcome."""
        testhooks.boundary(f"before:{step}")
        ctx.lease = self.leases.renew(ctx.lease, run_id=ctx.run.id)
        structlog.contextvars.bind_contextvars(step=str(step))
        started = utcnow()
        rec = StepRecord()
        try:
            yield rec
        except BaseException as exc:
            error = _describe(exc) if isinstance(exc, Exception) else type(exc).__name__
            self._audit_step(ctx, step, "failed", started, rec, error=error, exc=exc)
            raise
        else:
            self._audit_step(ctx, step, rec.outcome, started, rec)
        finally:
            structlog.contextvars.unbind_contextvars("step")
        testhooks.boundary(f"after:{step}")

    def _audit_step(
        self,
        ctx: RunContext,
        step: Step,
        outcome: str,
        started: datetime,
        rec: StepRecord,
        *,
        error: str | None = None,
        exc: BaseException | None = None,
    ) -> None:
        if exc is not None and isinstance(exc, VonageError) and rec.request_id is None:
            rec.request_id = exc.request_id
        try:
            self.audit.record(
                run_id=ctx.run.id,
                api_key=ctx.api_key,
                step=str(step),
                outcome=outcome,
                started_at=started,
                actor=ctx.run.actor,
                secret_id=rec.secret_id,
                request_id=rec.request_id,
                vault_version=rec.vault_version,
                error=error,
                detail=rec.detail or None,
            )
        except RotatorError as audit_exc:
            if exc is None:
                raise
            log.error("audit_write_failed", error=str(audit_exc))
        log.info("step", outcome=outcome, error=error)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["Outcome", "Rotator", "VonageSecretLimitError"]
