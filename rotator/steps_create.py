"""The create step: POST the staged secret to Vonage, settling an ambiguous answer by listing
(never a blind re-POST, which could take the key's last slot), and in an emergency the rounds
against someone re-adding secrets (each an audit event naming what it revoked).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace

import structlog

from rotator.clock import utcnow
from rotator.errors import (
    VonageError,
    VonageLastSecretError,
    VonageNotFoundError,
    VonageProtocolError,
    VonageSecretLimitError,
    VonageServerError,
    VonageTransportError,
)
from rotator.protocol import Step, verify_backoff
from rotator.runio import RunIO, RunRecord, StepReport
from rotator.vonage import Reply

log = structlog.get_logger("rotator.rotation")
CREATE_ATTEMPTS = 3
EMERGENCY_ROUND_STEP = "emergency_round"
EMERGENCY_ROUNDS = 3  # create attempts an emergency makes against someone re-adding secrets
AMBIGUOUS = (VonageTransportError, VonageServerError, VonageProtocolError)


def create(io: RunIO, rec: RunRecord) -> RunRecord:
    """Create the staged secret on Vonage; an ambiguous POST is settled by listing, not re-POST.

    ``posted`` tells rollback whether a POST of this run may have applied: after a definite
    refusal it did not, so no secret on Vonage can be this run's (an attacker's never is).
    A run relying on Vault's picture that Vonage refuses for a full key returns without a new
    id and with its staged value dropped (``key_full``): the caller goes the full path."""
    with io.step(Step.CREATE) as report:
        rec = io.checkpoint(replace(rec, posted=True))
        try:
            new_id, report.request_id = _create_winning(io, rec, report.detail)
        except VonageError as exc:
            if not isinstance(exc, AMBIGUOUS):
                rec = io.checkpoint(replace(rec, posted=False))
            if not (rec.vault_picture and isinstance(exc, VonageSecretLimitError)):
                raise
            report.request_id, report.outcome = exc.request_id, "key_full"
            return _unstage(io, rec, report)
        if "ambiguous_attempts" in report.detail:  # only a clean 201 proves Vault's picture
            rec = replace(rec, vault_picture=False)
        rec = io.checkpoint(replace(rec, new_id=new_id))
        report.secret_id = new_id
        io.note_run(new_secret_id=new_id)  # with the step's event, failed or not
        io.deps.boundary("posted:create")
        pending = rec.state.pending
        assert pending is not None
        state = io.deps.vault.update_state(
            rec.api_key, cas=rec.state.version, known=rec.state, pending=pending.with_id(new_id)
        )
        rec = io.checkpoint(replace(rec, state=state))
        report.vault_version = state.version
        io.deps.boundary("stored:create")
    return rec


def _unstage(io: RunIO, rec: RunRecord, report: StepReport) -> RunRecord:
    """Vonage refused the POST of a run relying on Vault's picture: the key is full, so Vault's
    picture is wrong (someone added a secret). Nothing reached Vonage; drop the staged value
    now, so that a crash while the run lists and makes room is no "POST that may have applied"
    for resume to reconcile against the very secret that filled the key."""
    pending = None if rec.state.pending is None else rec.state.pending.run_id
    state = rec.state
    if pending == rec.run.id:
        state = io.deps.vault.update_state(
            rec.api_key, cas=state.version, known=state, pending=None
        )
    report.vault_version = state.version
    report.detail.update(key_full=True, unstaged=True)
    log.warning("key_full", detail="Vonage refused a new secret; listing the key")
    return io.checkpoint(
        replace(rec, state=state, staged=False, new_secret=None, vault_picture=False, key_full=True)
    )


def _create_winning(io: RunIO, rec: RunRecord, detail: dict[str, object]) -> tuple[str, str | None]:
    """Create; in an emergency, a key full again since make room means someone is adding
    secrets: every secret but the one applications use now is revoked and create retried, for
    ``EMERGENCY_ROUNDS`` rounds, each an audit event naming what it revoked."""
    for round_no in range(1, EMERGENCY_ROUNDS + 1):
        try:
            return _create_once(io, rec, detail)
        except VonageSecretLimitError:
            if not rec.emergency or round_no == EMERGENCY_ROUNDS:
                raise
            _revoke_intruders(io, rec, round_no)
            detail["emergency_rounds"] = round_no
    raise AssertionError("unreachable")  # pragma: no cover


def _revoke_intruders(io: RunIO, rec: RunRecord, round_no: int) -> list[str]:
    """One emergency round: revoke every secret rotator neither uses nor made (audited)."""
    started = utcnow()
    listed, _ = io.list_secrets(rec.api_key)
    intruders = [s.id for s in listed if s.id != rec.old_id]
    revoked: list[str] = []
    for secret_id in intruders:
        with suppress(VonageNotFoundError, VonageLastSecretError):
            io.revoke(rec.api_key, secret_id)
            revoked.append(secret_id)
    io.deps.audit.record(
        run_id=rec.run.id,
        api_key=rec.api_key,
        step=EMERGENCY_ROUND_STEP,
        outcome="revoked",
        started_at=started,
        actor=rec.run.actor,
        detail={"round": round_no, "revoked": revoked, "kept": rec.old_id},
    )
    log.warning("emergency_round", round=round_no, revoked=revoked)
    return revoked


def _create_once(io: RunIO, rec: RunRecord, detail: dict[str, object]) -> tuple[str, str | None]:
    """The new secret's id, and the request id of the POST that made it (None if listed)."""
    secret = rec.new_secret
    assert secret is not None
    before = set(rec.known_ids())
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            reply: Reply = io.as_admin(
                lambda admin: io.deps.vonage.create_secret(admin, rec.api_key, secret)
            )
            assert reply.created is not None
            return reply.created.id, reply.request_id
        except AMBIGUOUS:
            # The POST may or may not have applied (an unreadable 200 did): find out by
            # listing, never re-POST blindly (a duplicate would take the last slot).
            found = io.find_created(rec, before)
            detail["ambiguous_attempts"] = attempt
            if found is not None:
                detail["reconciled"] = True
                return found, None
            if attempt == CREATE_ATTEMPTS:
                raise
            io.deps.sleep(verify_backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
