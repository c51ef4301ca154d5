"""``rotator rollback``: make the previous secret current again while it is still on Vonage.

Inside a rotation's grace period Vault's state record keeps the old value as ``previous`` and
Vonage still accepts it. A rollback, under the key's lease like a rotation: checks that the
previous secret still authenticates (get-balance), writes it back as current in Vault
(check-and-set), revokes the newer secret on Vonage, and ends the rotation it undoes as rolled
back. Each step is an audit event on that rotation's run, so the events outbox announces
``secret.revoked`` and ``rotation.rolled_back`` without any code of its own.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from rotator.audit import Run, RunStatus
from rotator.errors import NothingToRollBackError, RotationError, VonageAuthError
from rotator.protocol import Step
from rotator.runio import Deps, RunIO
from rotator.secret import Credentials
from rotator.vault import StagedSecret

log = structlog.get_logger("rotator.rollback")


def rollback(deps: Deps, api_key: str, *, actor: str, reason: str) -> Run:
    """Undo the key's last rotation; refused (``NothingToRollBackError``) once its previous
    secret is gone (grace period over, or no grace at all)."""
    lease = deps.leases.acquire(api_key)
    try:
        previous, run = _target(deps, api_key)
        run = replace(run, actor=actor)
        io = RunIO(deps, run, lease)
        _check_on_vonage(io, api_key, previous)
        _authenticates(io, api_key, previous)
        _restore(io, api_key, previous, run)
        _revoke_newer(io, api_key, run)
        log.info("rotation_rolled_back", api_key=api_key, run_id=run.id)
        return deps.audit.finish_run(
            run.id, RunStatus.ROLLED_BACK, error=f"rolled back by {actor}: {reason}", actor=actor
        )
    finally:
        deps.leases.release(lease)


def _target(deps: Deps, api_key: str) -> tuple[StagedSecret, Run]:
    """The previous secret Vault keeps, and the rotation (awaiting revocation) that made it so."""
    gone = f"{api_key} has no previous secret to go back to"
    state = deps.vault.read_state(api_key)
    previous = state.previous
    if previous is None or not previous.secret_id:
        raise NothingToRollBackError(f"{gone}: its grace period is over or it had none")
    record = deps.vault.read_current(api_key)
    runs = [
        r
        for r in deps.audit.awaiting_revoke(api_key)
        if record is not None and r.new_secret_id == record.secret_id
    ]
    if not runs:
        raise NothingToRollBackError(f"{gone}: no rotation of it is awaiting revocation")
    return previous, runs[-1]


def _check_on_vonage(io: RunIO, api_key: str, previous: StagedSecret) -> None:
    listed, _ = io.list_secrets(api_key)
    if previous.secret_id not in {s.id for s in listed}:
        raise NothingToRollBackError(
            f"{api_key}: its previous secret {previous.secret_id} is no longer on Vonage"
        )


def _authenticates(io: RunIO, api_key: str, previous: StagedSecret) -> None:
    with io.step(Step.VERIFY) as report:
        report.secret_id = previous.secret_id
        report.detail = {"rollback": True}
        try:
            reply = io.deps.vonage.get_balance(Credentials(api_key, previous.secret), retry=False)
        except VonageAuthError:
            raise RotationError(
                f"{api_key}: its previous secret {previous.secret_id} no longer authenticates",
                hint="nothing was changed; rotate instead",
            ) from None
        report.request_id = reply.request_id


def _restore(io: RunIO, api_key: str, previous: StagedSecret, run: Run) -> None:
    """Make the previous secret current again (CAS on the record the rotation wrote)."""
    vault = io.deps.vault
    assert previous.secret_id is not None
    with io.step(Step.ROLLBACK) as report:
        record = vault.read_current(api_key)
        if record is None or record.secret_id != run.new_secret_id:
            raise RotationError(f"{api_key}: Vault's current secret changed meanwhile")
        version = vault.write_current(
            api_key, previous.secret, previous.secret_id, cas=record.version, run_id=run.id
        )
        check = vault.read_current(api_key)
        if check is None or check.secret_id != previous.secret_id:
            raise RotationError(f"Vault read-back of {api_key} does not match the write")
        state = vault.read_state(api_key)
        vault.update_state(api_key, cas=state.version, previous=None)
        report.secret_id, report.vault_version = previous.secret_id, version
        report.detail = {"restored": previous.secret_id, "replaced": run.new_secret_id}


def _revoke_newer(io: RunIO, api_key: str, run: Run) -> None:
    if not run.new_secret_id:
        return
    with io.step(Step.REVOKE) as report:
        report.secret_id = run.new_secret_id
        report.request_id = io.revoke(api_key, run.new_secret_id)
        report.detail = {"revoked": [run.new_secret_id], "reason": "rollback"}


__all__ = ["rollback"]
