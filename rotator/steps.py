"""The rotation's steps, one function each, and the table the runner walks.

    inspect → make room → generate → stage → create → verify → promote → revoke

Each step takes the run's I/O shell (``RunIO``) and its frozen ``RunRecord`` and returns the
updated record; each is one audited step (``RunIO.step``). A forward run walks ``TABLE`` from the
start; a resumed run walks the same table from the step ``protocol.resume`` names. Where a step
makes progress that recovery must see even if the step then fails, it checkpoints the record.
The create step, with its ambiguous-POST and emergency rounds, lives in ``rotator.steps_create``.

Create first: a scheduled run of a key whose state Vault knows completely does not list at
inspect (``protocol.must_list``) and has no room to make; Vonage's two-secret cap checks Vault's
picture at create, and a refusal for a full key sends the run through inspect, make room,
generate, stage and create again, listing this time (``create_step``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from enum import Enum

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from rotator import policy
from rotator.audit import Run, RunStatus
from rotator.clock import iso, utcnow
from rotator.errors import (
    GracePeriodActiveError,
    RotationError,
    UnidentifiedSecretError,
    VaultConflictError,
    VerificationFailedError,
    VonageError,
    VonageNotFoundError,
)
from rotator.protocol import (
    GraceNotOver,
    Identified,
    MakeRoom,
    Observed,
    Step,
    Unidentified,
    VaultKnows,
    identify,
    make_room,
    must_list,
    verify_wait,
)
from rotator.runio import RunIO, RunRecord, StepReport, observe
from rotator.secret import Credentials
from rotator.steps_create import EMERGENCY_ROUND_STEP, create
from rotator.vault import CurrentRecord, RotationState, StagedSecret, StateChanges
from rotator.vonage import Reply, SecretInfo

log = structlog.get_logger("rotator.rotation")


def inspect(io: RunIO, rec: RunRecord) -> RunRecord:
    """Read what Vault holds for the key and, unless Vault's picture is complete
    (``protocol.must_list``), what Vonage lists: a scheduled rotation of a key Vault knows
    creates first, and Vonage's two-secret cap checks the picture at create."""
    vault = io.deps.vault
    with io.step(Step.INSPECT) as report:
        record = vault.read_current(rec.api_key)
        state = io.state(rec.api_key)
        why = _why_list(io, rec, record, state)
        report.vault_version = record.version if record else None
        report.detail = {
            "listed": why is not None,
            "vault_secret_id": record.secret_id if record else None,
            "vault_fingerprint": vault.fingerprint(record.api_secret) if record else None,
        }
        listed: list[SecretInfo] = []
        if why is not None:
            listed, report.request_id = io.list_secrets(rec.api_key)
            report.detail.update(why=why, vonage_secret_ids=[s.id for s in listed])
    return replace(rec, listed=tuple(listed), record=record, state=state, vault_picture=why is None)


def _why_list(
    io: RunIO, rec: RunRecord, record: CurrentRecord | None, state: RotationState
) -> str | None:
    """Why this run lists before creating (None: Vault's picture suffices)."""
    if rec.key_full:
        return "Vonage refused a new secret: the key is full"
    known = VaultKnows(
        emergency=rec.emergency,
        record_secret_id=record.secret_id if record else None,
        pending=state.pending is not None,
        previous=state.previous is not None,
        adopted=state.adopted_id is not None,
    )
    why = must_list(known)
    if why is None:  # the last question costs a database read: asked only when it decides
        owed = any(r.old_secret_id for r in io.awaiting_revoke())
        why = must_list(replace(known, owed_revocation=owed))
    return why


def make_room_step(io: RunIO, rec: RunRecord) -> RunRecord:
    """Vonage allows two secrets: revoke the one that is not current, if there are two."""
    deps = io.deps
    with io.step(Step.MAKE_ROOM) as report:
        seen, who, plan = _room(io, rec)
        rec = io.checkpoint(replace(rec, old_id=plan.old_id))
        report.detail = {"current_id": who.current_id, "old_id": plan.old_id}
        if rec.vault_picture:
            report.detail["listed"] = False  # Vault's picture: the create step's 201 proves it
        if not plan.revoke:
            io.note_run(old_secret_id=plan.old_id)  # with the step's event: nothing else changed
            report.outcome = "skipped"
            return rec
        deps.audit.update_run(rec.run.id, old_secret_id=plan.old_id)  # before revoking anything
        report.detail.update(revoked=list(plan.revoke), reason=plan.reason)
        if plan.cut_grace is not None:  # only an emergency gets here: the audit log says so
            report.detail["cut_grace"] = {
                "secret_id": seen.previous_id if seen else None,
                "revoke_after": iso(plan.cut_grace),
            }
        rec = _make_room(io, rec, plan.revoke, report)
    return rec


def _room(io: RunIO, rec: RunRecord) -> tuple[Observed | None, Identified, MakeRoom]:
    """What the key looks like, which secret is current, and what making room revokes. A run
    relying on Vault's picture knows: the record's secret, alone, is current; nothing to do."""
    if rec.vault_picture:
        assert rec.record is not None
        current = rec.record.secret_id
        who = Identified(current_id=current, old_id=current)
        return None, who, MakeRoom(revoke=(), old_id=current, reason="Vault's picture")
    seen = observe(io.deps.vonage, rec.api_key, rec.listed, rec.record, rec.state)
    who = identify(seen)
    return seen, who, _room_plan(io, rec, seen, who)


def _room_plan(io: RunIO, rec: RunRecord, seen: Observed, who: Identified) -> MakeRoom:
    """What make room revokes, or the refusal (an unidentified secret, a grace not over)."""
    try:
        # An emergency trusts no secret it cannot identify: it never needs to guess.
        return make_room(
            seen,
            who,
            revoke_older_if_unidentified=rec.emergency
            or io.deps.config.rotation.on_unidentified == "revoke_older",
            now=utcnow(),
            emergency=rec.emergency,
        )
    except Unidentified as exc:
        raise UnidentifiedSecretError(
            f"{rec.api_key} has {exc}; rotator will not guess which one applications use"
        ) from None
    except GraceNotOver as exc:
        raise grace_error(rec.api_key, exc.until) from None


def _make_room(io: RunIO, rec: RunRecord, revoke: Sequence[str], report: StepReport) -> RunRecord:
    """Revoke ``revoke`` and forget them: in the record, and as Vault's "previous" secret."""
    deps = io.deps
    for secret_id in revoke:
        report.request_id = io.revoke(rec.api_key, secret_id)
    rec = io.checkpoint(replace(rec, listed=tuple(s for s in rec.listed if s.id not in revoke)))
    previous = rec.state.previous
    if previous and previous.secret_id in revoke:
        state = deps.vault.update_state(
            rec.api_key, cas=rec.state.version, known=rec.state, previous=None
        )
        rec = io.checkpoint(replace(rec, state=state))
        report.vault_version = state.version
    io.close_superseded(rec, {s.id for s in rec.listed})
    return rec


def grace_error(api_key: str, until: datetime) -> GracePeriodActiveError:
    """The refusal of a rotation that would cut ``api_key``'s grace period short."""
    return GracePeriodActiveError(
        f"{api_key}: its previous secret is in its grace period until {iso(until)}; "
        f"a non-emergency rotation can run from then",
        until=until,
    )


def generate(io: RunIO, rec: RunRecord) -> RunRecord:
    with io.step(Step.GENERATE) as report:
        length = io.deps.config.secret_length_for(rec.api_key)
        secret = policy.generate(length)
        report.detail = {"length": length, "fingerprint": io.deps.vault.fingerprint(secret)}
    return replace(rec, new_secret=secret)


def stage(io: RunIO, rec: RunRecord) -> RunRecord:
    """Write the new value to Vault as pending before Vonage sees it: a crash never loses it."""
    assert rec.new_secret is not None
    with io.step(Step.STAGE) as report:
        pending = StagedSecret(
            secret=rec.new_secret, secret_id=None, run_id=rec.run.id, staged_at=iso(utcnow())
        )
        rec = io.checkpoint(replace(rec, staged=True))  # the write below may apply and fail
        state = io.deps.vault.update_state(
            rec.api_key, cas=rec.state.version, known=rec.state, pending=pending
        )
        rec = io.checkpoint(replace(rec, state=state))
        report.vault_version = state.version
    return rec


def verify(io: RunIO, rec: RunRecord) -> RunRecord:
    """Retry get-balance with the new secret until it authenticates or verify_timeout is up."""
    assert rec.new_secret is not None
    creds = Credentials(rec.api_key, rec.new_secret)
    timeout = io.deps.config.rotation.verify_timeout.total_seconds()
    with io.step(Step.VERIFY) as report:
        attempts = 0

        def attempt() -> Reply:
            nonlocal attempts
            attempts += 1
            return io.deps.vonage.get_balance(creds, retry=False)

        try:
            reply = _verifying(io, timeout)(attempt)
        except VonageError as exc:
            report.detail = {"attempts": attempts}
            raise VerificationFailedError(
                f"the new secret of {rec.api_key} did not authenticate within {timeout:g}s "
                f"({attempts} attempts; last: {type(exc).__name__}: {exc})"
            ) from None
        report.request_id = reply.request_id
        report.detail = {"attempts": attempts}
    return rec


def _verifying(io: RunIO, timeout: float) -> Retrying:
    """Verification's retry policy: any Vonage error (a new secret takes a moment to work) is
    retried after ``verify_wait`` (every 0.25 s at first: an emergency waits for propagation,
    not for a backoff) while the next attempt still fits in ``timeout``, renewing the lease
    after each failure so a long wait does not lose it. Every attempt passes the shared rate
    limiter like any other call."""
    clock = io.deps.clock
    started = clock()
    deadline = started + timeout

    def wait(_state: RetryCallState) -> float:
        return verify_wait(clock() - started)

    def out_of_time(state: RetryCallState) -> bool:
        return clock() + wait(state) > deadline

    return Retrying(
        retry=retry_if_exception_type(VonageError),
        wait=wait,
        stop=out_of_time,
        after=lambda _state: io.renew(),
        sleep=io.deps.sleep,
        reraise=True,
    )


def promote(io: RunIO, rec: RunRecord) -> RunRecord:
    """Publish the new secret as current, keeping the old value as "previous" for the grace."""
    assert rec.new_secret is not None
    assert rec.new_id is not None
    vault = io.deps.vault
    with io.step(Step.PROMOTE) as report:
        previous = None
        # An emergency keeps no value beside an id it cannot vouch for: a Vault record that
        # does not name the old secret (an attacker's, say) is not that secret's value.
        vouched = not rec.emergency or (
            rec.record is not None and rec.record.secret_id == rec.old_id
        )
        if rec.record is not None and rec.old_id is not None and vouched:
            previous = StagedSecret(
                secret=rec.record.api_secret,
                secret_id=rec.old_id,
                run_id=rec.run.id,
                staged_at=iso(utcnow()),
                revoke_after=iso(utcnow() + rec.grace_period),
            )
        # 1: keep the old value as "previous" while the new one is still pending, so a crash
        # between the writes below always leaves both values in Vault.
        state = vault.update_state(
            rec.api_key, cas=rec.state.version, known=rec.state, previous=previous
        )
        rec = io.checkpoint(replace(rec, state=state))
        # 2: publish the new secret as current.
        version = _write_current(io, rec)
        # 3: read it back: what applications will read must be exactly the new secret.
        check = vault.read_current(rec.api_key)
        if check is None or check.secret_id != rec.new_id or check.api_secret != rec.new_secret:
            raise RotationError(f"Vault read-back of {rec.api_key} does not match the write")
        rec = io.checkpoint(replace(rec, record=check))
        report.vault_version, report.secret_id = version, rec.new_id
        io.deps.audit.update_run(rec.run.id, new_secret_id=rec.new_id)
        # 4: the pending copy is no longer needed, nor any adoption: the record now names the
        # current secret (clearing adopted_id here is deliberate). A run that revokes the old
        # secret now drops them with the revoke step's write instead (one Vault write, not
        # two); meanwhile the pending copy is the current value, and a crash in between is
        # resumed as a finished promotion (``protocol.resume``), which drops it.
        if not revokes_now(rec):
            state = vault.update_state(
                rec.api_key, cas=state.version, known=state, pending=None, adopted_id=None
            )
    return replace(rec, state=state, staged=False)


def revokes_now(rec: RunRecord) -> bool:
    """Whether the run revokes its old secret itself (else after the grace period)."""
    return not (rec.grace_period > timedelta(0) and rec.old_id is not None)


def _write_current(io: RunIO, rec: RunRecord) -> int:
    assert rec.new_secret is not None
    assert rec.new_id is not None
    vault = io.deps.vault
    cas = rec.record.version if rec.record else 0
    try:
        return vault.write_current(
            rec.api_key, rec.new_secret, rec.new_id, cas=cas, run_id=rec.run.id
        )
    except VaultConflictError:
        again = vault.read_current(rec.api_key)
        if again is None or again.secret_id != rec.new_id:
            raise
        return again.version


def revoke(io: RunIO, rec: RunRecord) -> RunRecord:
    """Revoke the old secret now, or defer it past the grace period (the daemon does it then)."""
    if not revokes_now(rec):
        revoke_after = utcnow() + rec.grace_period
        io.deps.audit.record(
            run_id=rec.run.id,
            api_key=rec.api_key,
            step=Step.REVOKE,
            outcome="deferred",
            started_at=utcnow(),
            secret_id=rec.old_id,
            detail={"revoke_after": iso(revoke_after)},
        )
        log.info("rotation_promoted", revoke_after=iso(revoke_after))
        return replace(rec, revoke_after=revoke_after)
    return revoke_now(io, rec)


def revoke_now(io: RunIO, rec: RunRecord) -> RunRecord:
    """Revoke the old secret (emergency: every secret but the new one). Vonage's 204 settles a
    DELETE; an ambiguous answer (timeout, reset, 5xx, 404) is confirmed by listing."""
    assert rec.new_id is not None
    deps = io.deps
    with io.step(Step.REVOKE) as report:
        # This run's own read of Vault (promote's read-back, or resume's) when it has one.
        mine = rec.record is not None and rec.record.secret_id == rec.new_id
        record = rec.record if mine else deps.vault.read_current(rec.api_key)
        if record is None or record.secret_id != rec.new_id:
            raise RotationError(f"{rec.api_key}: the new secret is not current in Vault")
        # Rotating the primary: its old secret may be the one being revoked, so use the new.
        # Otherwise the primary's current one, re-read if refused (a concurrent rotation of
        # the primary may revoke it while this step waits out a 429: see RunIO.as_admin).
        if rec.api_key == deps.primary:
            io.use_admin(Credentials(deps.primary, record.api_secret))
        targets, known = _revoke_targets(io, rec)
        answers = [_revoke_one(io, rec, secret_id, report) for secret_id in targets]
        listed = known is None or any(a is not Revoked.SETTLED for a in answers)
        if listed:
            remaining = [s.id for s in io.list_secrets(rec.api_key)[0]]
        else:
            remaining = [i for i in (known or []) if i not in targets]  # Vonage's 204s said so
        report.detail = {"listed": listed}
        unknown = [i for i in remaining if i != rec.new_id and i not in targets]
        if unknown:  # nobody recorded them: the audit log names them (and a warning is logged)
            report.detail["unknown"] = unknown
        swapped = Revoked.VANISHED in answers and known is not None and not rec.emergency
        if swapped and len(unknown) == 1:
            # The old secret this run knew of was gone before it revoked it, and a stranger
            # stands in its place: swapped behind Vault's back. Listing first, a run would have
            # taken the stranger for the old secret (the one besides its own) and revoked it; so
            # does this one. (A resumed run knows nothing of its own: it only warns.)
            report.detail["swapped_in"] = unknown
            targets = [*targets, *unknown]
            if _revoke_one(io, rec, unknown[0], report) is Revoked.SETTLED:
                remaining = [i for i in remaining if i != unknown[0]]
            else:
                remaining = [s.id for s in io.list_secrets(rec.api_key)[0]]
        report.detail.update(revoked=targets, remaining=remaining)
        _check_revoked(rec, targets, remaining)
        io.close_superseded(rec, set(remaining))
        state = rec.state if mine else deps.vault.read_state(rec.api_key)
        changes: StateChanges = {}
        if state.previous is not None and state.previous.secret_id not in remaining:
            changes["previous"] = None
        if state.pending is not None and state.pending.run_id == rec.run.id:
            changes["pending"] = changes["adopted_id"] = None  # what promote left to this write
        if changes:
            state = deps.vault.update_state(rec.api_key, cas=state.version, known=state, **changes)
        report.vault_version = state.version
    return replace(rec, state=state)


class Revoked(Enum):
    """What Vonage's answer to one DELETE says."""

    SETTLED = "settled"  # its own 204: gone, no listing needed
    VANISHED = "vanished"  # 404: gone before this DELETE (a resumed run, by hand, or swapped)
    AMBIGUOUS = "ambiguous"  # anything else: the listing tells


def _revoke_one(io: RunIO, rec: RunRecord, secret_id: str, report: StepReport) -> Revoked:
    """Revoke ``secret_id``; what the answer settles (the listing confirms the rest)."""
    try:
        reply = io.revoke_reply(rec.api_key, secret_id)
    except VonageNotFoundError:
        return Revoked.VANISHED
    report.request_id = reply.request_id
    return Revoked.SETTLED if reply.revoked else Revoked.AMBIGUOUS


def _revoke_targets(io: RunIO, rec: RunRecord) -> tuple[list[str], list[str] | None]:
    """What to revoke, and the key's secrets as this run knows them (None: unknown, list after).

    An emergency lists again: everything but the new secret goes, including a secret added
    since inspect (Vonage's two-secret cap does not stop a swap: revoke one, add another). A
    scheduled run knows the key from its own inspect listing, or from Vault's picture which
    the 201 to its POST proved (at most one secret before it: the old one), plus the secret it
    created; a run resumed or completed later without either confirms by listing afterwards.
    """
    assert rec.new_id is not None
    if rec.emergency:
        ids = [s.id for s in io.list_secrets(rec.api_key)[0]]
        if rec.new_id not in ids:
            raise RotationError(f"{rec.api_key}: the new secret {rec.new_id} is not on Vonage")
        return [i for i in ids if i != rec.new_id], ids
    targets = [rec.old_id] if rec.old_id and rec.old_id != rec.new_id else []
    if not rec.listed and not rec.vault_picture:
        return targets, None
    known = [i for i in rec.known_ids() if i != rec.new_id]
    return targets, [*known, rec.new_id]


def _check_revoked(rec: RunRecord, targets: list[str], remaining: list[str]) -> None:
    if rec.new_id not in remaining:
        raise RotationError(f"{rec.api_key}: the new secret {rec.new_id} is not on Vonage")
    leftover = [i for i in remaining if i != rec.new_id]
    survived = [i for i in targets if i in leftover]
    if (rec.emergency and leftover) or survived:
        # A DELETE that "succeeded" without effect: keep the old value in Vault (never a
        # secret on Vonage without its value) and leave the run for the next one.
        raise RotationError(f"{rec.api_key}: secrets {survived or leftover} survived revocation")
    if leftover:
        log.warning("unknown_secret_left", secret_ids=leftover)


def create_step(io: RunIO, rec: RunRecord) -> RunRecord:
    """Create the new secret. A run that relied on Vault's picture and found the key full
    (``RunRecord.key_full``) goes the full path from there, with the same step functions:
    list, make room (or refuse, as any run would), generate, stage, create."""
    rec = create(io, rec)
    if rec.new_id is None and rec.key_full:
        for step in (inspect, make_room_step, generate, stage, create):
            rec = io.checkpoint(step(io, rec))
    return rec


TABLE = (
    (Step.INSPECT, inspect),
    (Step.MAKE_ROOM, make_room_step),
    (Step.GENERATE, generate),
    (Step.STAGE, stage),
    (Step.CREATE, create_step),
    (Step.VERIFY, verify),
    (Step.PROMOTE, promote),
    (Step.REVOKE, revoke),
)
__all__ = ["EMERGENCY_ROUND_STEP", "TABLE", "create", "grace_error", "revoke_now", "walk"]


def walk(io: RunIO, rec: RunRecord, start: Step = Step.INSPECT) -> Run:
    """Run the table from ``start`` to the end, then close the run: revoked → succeeded,
    revocation deferred → awaiting revoke (the daemon finishes it after the grace period)."""
    names = [step for step, _ in TABLE]
    rec = io.checkpoint(rec)
    for _, step in TABLE[names.index(start) :]:
        rec = io.checkpoint(step(io, rec))
    if rec.revoke_after is not None:
        return io.finish(RunStatus.AWAITING_REVOKE, revoke_after=rec.revoke_after)
    log.info("rotation_succeeded", new_secret_id=rec.new_id)
    return io.finish(RunStatus.SUCCEEDED)
