"""When a run does not go forward: failing, rolling back, and resuming a run a crash left.

The rule: nothing changed → the run failed; a new secret was staged or created → it is undone
(revoked on Vonage, dropped from Vault) and the run is rolled back; the new secret is already
current → the run is left running for the next run of the key to finish (a promotion is never
undone). The one exception: a new secret that is all the key has left is promoted even
unverified, since revoking it would lock everyone out. Resuming asks ``protocol.resume`` what
Vault and Vonage show and continues the *same* step table (``rotator.steps``) from the step it
names, or rolls back.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from rotator.audit import Run, RunStatus
from rotator.errors import (
    LeaseHeldError,
    RotationError,
    RotatorError,
    VonageLastSecretError,
    VonageNotFoundError,
)
from rotator.lease import Lease
from rotator.protocol import Resume, ResumeState, Resumption, Step, resume
from rotator.runio import Deps, RunIO, RunRecord, describe
from rotator.steps import walk

log = structlog.get_logger("rotator.rotation")


def fail(deps: Deps, run: Run, io: RunIO | None, exc: RotatorError) -> Run:
    """End a run that hit ``exc``, from the progress its last checkpoint recorded."""
    error = describe(exc)
    log.error("rotation_failed", error=error)
    rec = io.latest if io is not None else None
    if io is None or rec is None or (not rec.staged and rec.new_id is None):
        return deps.audit.finish_run(run.id, RunStatus.FAILED, error=error)
    try:
        current = deps.vault.read_current(rec.api_key)
        if current is not None and rec.new_id and current.secret_id == rec.new_id:
            deps.audit.update_run(run.id, error=f"{error}; promoted, revocation pending")
            raise exc
        rec = rollback(io, rec, reason=error)
        if rec.only_secret_left:
            return promote_last_secret(io, rec, error)
    except LeaseHeldError:
        raise
    except RotatorError as rollback_exc:
        if rollback_exc is exc:
            raise
        # Vault or Vonage is down: leave the run `running`; the next run resumes it.
        log.error("rollback_incomplete", error=describe(rollback_exc))
        deps.audit.update_run(run.id, error=f"{error}; rollback pending: {rollback_exc}")
        raise exc from rollback_exc
    return deps.audit.finish_run(run.id, RunStatus.ROLLED_BACK, error=error)


def rollback(io: RunIO, rec: RunRecord, *, reason: str) -> RunRecord:
    """Undo a staged/created secret: revoke it on Vonage, then drop its value from Vault."""
    vault = io.deps.vault
    with io.step(Step.ROLLBACK) as report:
        report.detail = {"reason": reason[:300]}
        io.refresh_admin()
        new_id = rec.new_id
        if new_id is None and rec.staged and rec.posted:
            # Only a POST that may have applied can have made a secret of this run's.
            before = {s.id for s in rec.listed} | {i for i in (rec.old_id,) if i}
            try:
                new_id = io.find_created(rec, before)
            except RotationError:
                new_id = None
        rec = io.checkpoint(replace(rec, new_id=new_id))
        if new_id is not None:
            report.secret_id = new_id
            try:
                report.request_id = io.revoke(rec.api_key, new_id)
            except VonageNotFoundError:
                pass
            except VonageLastSecretError:
                # Everything else is gone: the new secret is all the key has, so it must
                # become current (revoking it would lock everyone out).
                report.outcome = "promote_instead"
                return io.checkpoint(replace(rec, only_secret_left=True))
        state = vault.read_state(rec.api_key)
        if state.pending is not None and state.pending.run_id == rec.run.id:
            state = vault.update_state(rec.api_key, cas=state.version, pending=None)
        report.vault_version = state.version
    return io.checkpoint(replace(rec, staged=False))


def promote_last_secret(io: RunIO, rec: RunRecord, error: str) -> Run:
    """The key's every other secret is gone: the new one becomes current even unverified."""
    log.warning("promoting_only_secret", error=error)
    if rec.new_secret is None:
        raise RotationError(
            f"{rec.api_key}: its only secret on Vonage is one whose value rotator no longer holds",
            hint="create a new secret in the Vonage dashboard and `rotator adopt` it",
        )
    run = walk(io, rec, start=Step.PROMOTE)
    io.deps.audit.update_run(
        run.id, error=f"{error}; the new secret was the key's only one, so it was promoted"
    )
    return io.deps.audit.get_run(run.id)


def resume_run(deps: Deps, run: Run, lease: Lease) -> Run:
    """Finish or roll back ``run``, which a crash left running, from what Vault and Vonage show."""
    structlog.contextvars.bind_contextvars(run_id=run.id)
    lease = deps.leases.renew(lease, run_id=run.id)
    io = RunIO(deps, run, lease, named=True)
    rec = io.checkpoint(RunRecord.begin(deps.config, run))
    try:
        rec, decided = _decide(io, rec)
        log.info("resuming_run", action=str(decided.action))
        if decided.start is not None:
            return walk(io, _prepare(io, rec, decided), start=decided.start)
        if decided.action is Resume.ABANDON:
            return deps.audit.finish_run(
                run.id, RunStatus.ROLLED_BACK, error="interrupted before any change; resumed"
            )
        rec = io.checkpoint(replace(rec, staged=True) if rec.new_id is not None else rec)
        rec = io.checkpoint(replace(rec, posted=True))  # a crash hides whether a POST applied
        rec = rollback(io, rec, reason="resumed after interruption")
        if rec.only_secret_left:
            return promote_last_secret(io, rec, "resumed after interruption")
        return deps.audit.finish_run(
            run.id, RunStatus.ROLLED_BACK, error="interrupted; rolled back on resume"
        )
    except LeaseHeldError:
        raise
    except RotatorError as exc:
        return fail(deps, run, io, exc)
    finally:
        structlog.contextvars.unbind_contextvars("run_id")


def _decide(io: RunIO, rec: RunRecord) -> tuple[RunRecord, Resumption]:
    """The audited resume step: observe the key and decide how the run goes on."""
    vault = io.deps.vault
    with io.step(Step.RESUME) as report:
        listed, _ = io.list_secrets(rec.api_key)
        record = vault.read_current(rec.api_key)
        state = vault.read_state(rec.api_key)
        pending = state.pending
        mine = pending is not None and pending.run_id == rec.run.id
        rec = io.checkpoint(
            replace(
                rec,
                listed=tuple(listed),
                record=record,
                state=state,
                staged=mine,
                new_secret=pending.secret if mine and pending is not None else None,
            )
        )
        decided = resume(
            ResumeState(
                vonage_ids=tuple(s.id for s in listed),
                record_secret_id=record.secret_id if record else None,
                pending_of_run=mine,
                pending_secret_id=pending.secret_id if mine and pending else None,
                run_new_secret_id=rec.run.new_secret_id,
            )
        )
        report.detail = {"action": str(decided.action), "new_secret_id": decided.new_id}
        if decided.action is Resume.FIND_CREATED:
            known = {i for i in (rec.old_id,) if i}
            if state.previous and state.previous.secret_id:
                known.add(state.previous.secret_id)
            if record and record.secret_id:
                known.add(record.secret_id)
            decided = Resumption.found(io.find_created(rec, known))
            report.detail.update(action=str(decided.action), new_secret_id=decided.new_id)
        rec = io.checkpoint(replace(rec, new_id=decided.new_id))
    return rec, decided


def _prepare(io: RunIO, rec: RunRecord, decided: Resumption) -> RunRecord:
    """Bring the run row and Vault to where the table's step ``decided.start`` expects them."""
    assert decided.new_id is not None
    vault = io.deps.vault
    io.deps.audit.update_run(rec.run.id, new_secret_id=decided.new_id)
    pending = rec.state.pending
    if decided.action is Resume.VERIFY:
        if pending is not None and pending.secret_id is None:
            state = vault.update_state(
                rec.api_key, cas=rec.state.version, pending=pending.with_id(decided.new_id)
            )
            rec = io.checkpoint(replace(rec, state=state))
        return rec
    # FINISH_PROMOTION: current already names the new secret; the crash came before promote
    # dropped the pending copy and any adoption (cleared on purpose, as promote does).
    if rec.staged:
        state = vault.update_state(
            rec.api_key, cas=rec.state.version, pending=None, adopted_id=None
        )
        rec = replace(rec, state=state)
    return io.checkpoint(replace(rec, staged=False))
