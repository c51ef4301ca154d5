"""The rotation protocol's decisions, as pure functions of what was observed.

The runner (``rotator.rotation``) does the I/O: it observes Vonage, Vault and the audit log, asks
these functions what to do, and does it. Keeping the decisions here makes every branch — which
secret is current, what to revoke to make room, how to resume a crashed run — testable without a
server, and keeps each step idempotent: each decision first asks whether its work is done.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from rotator.clock import iso


class Step(StrEnum):
    """Rotation steps, in order; each is one audit event."""

    LOCK = "lock"
    RESUME = "resume"
    INSPECT = "inspect"
    MAKE_ROOM = "make_room"
    GENERATE = "generate"
    STAGE = "stage"
    CREATE = "create"
    VERIFY = "verify"
    PROMOTE = "promote"
    REVOKE = "revoke"
    ROLLBACK = "rollback"


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What rotator saw of one key before deciding."""

    vonage_ids: tuple[str, ...]  # oldest first
    record_exists: bool  # Vault holds a current secret value for the key
    record_secret_id: str | None
    record_authenticates: bool | None = None  # None: not checked
    previous_id: str | None = None  # Vault's "previous" bookkeeping
    adopted_id: str | None = None  # named by an operator with `rotator adopt`
    previous_revoke_after: datetime | None = None  # when the previous secret's grace ends
    # A run awaiting revocation promised its old secret until then (even one whose value Vault
    # never held: applications configured by hand may use it).
    promised_until: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class VaultKnows:
    """What Vault (and the audit log) tell about one key before anything is listed."""

    emergency: bool
    record_secret_id: str | None  # Vault's current record names this id (None: no record/id)
    pending: bool = False  # a staged secret: a run did not finish
    previous: bool = False  # an old secret kept for its grace period or awaiting revocation
    adopted: bool = False  # an operator named a secret (`rotator adopt`) not yet rotated away
    owed_revocation: bool = False  # a run awaits revoking an old secret (maybe still on Vonage)


def must_list(known: VaultKnows) -> str | None:
    """Why a run must list the key's secrets before creating one; None: it may create first.

    Vonage refuses a third secret, so a definite 201 to the POST proves that at most one secret
    existed before it. When Vault's current record names that one and nothing else of the key
    is pending, kept, adopted or owed a revocation, a listing could only repeat Vault's picture;
    a key that is in fact full (someone added a secret) is caught by the refusal, and the run
    then lists. An emergency always lists: it revokes every other secret, known or not.
    """
    checks = (
        (known.emergency, "an emergency revokes every other secret, known or not"),
        (known.record_secret_id is None, "Vault's record names no current secret id"),
        (known.pending, "a staged secret of an unfinished run"),
        (known.previous, "a previous secret is kept for its grace period or revocation"),
        (known.adopted, "an adopted secret is still to be rotated away"),
        (known.owed_revocation, "a run awaits revoking an old secret"),
    )
    return next((why for failed, why in checks if failed), None)


@dataclass(frozen=True, kw_only=True)
class Identified:
    """Which Vonage secret is current, and which one rotation replaces."""

    current_id: str | None
    old_id: str | None  # the secret applications use now (may have no value in Vault)
    problem: str | None = None  # why the current one cannot be told


def identify(seen: Observed) -> Identified:
    """Reconcile Vault's record with Vonage's list."""
    ids = seen.vonage_ids
    if seen.record_exists and seen.record_secret_id in ids:
        return Identified(current_id=seen.record_secret_id, old_id=seen.record_secret_id)
    if seen.adopted_id in ids:
        return Identified(current_id=None, old_id=seen.adopted_id)
    usable = seen.record_exists and seen.record_authenticates is not False
    if usable and seen.previous_id in ids and len(ids) == 2:
        other = next(i for i in ids if i != seen.previous_id)
        return Identified(current_id=other, old_id=other)
    if usable and len(ids) == 1:
        return Identified(current_id=ids[0], old_id=ids[0])
    if len(ids) == 1:
        # No usable record (a subaccount never rotated, or a stale record): the one secret on
        # Vonage is what applications use now; rotation replaces it.
        return Identified(current_id=None, old_id=ids[0])
    if not ids:
        return Identified(current_id=None, old_id=None)
    why = (
        "Vault's record names no secret id"
        if seen.record_exists and not seen.record_secret_id
        else "Vault holds no record of which one is current"
        if not seen.record_exists
        else f"Vault's secret id {seen.record_secret_id} is not on Vonage"
    )
    return Identified(current_id=None, old_id=None, problem=f"{len(ids)} secrets and {why}")


@dataclass(frozen=True, kw_only=True)
class MakeRoom:
    revoke: tuple[str, ...]
    old_id: str | None  # the secret still in use after making room
    reason: str
    cut_grace: datetime | None = None  # an emergency revokes a previous secret this early


class Unidentified(Exception):
    """Two secrets and no way to tell which one applications use."""


class GraceNotOver(Exception):
    """Making room would revoke a previous secret applications may still use (its grace)."""

    def __init__(self, secret_id: str, until: datetime) -> None:
        super().__init__(f"the previous secret {secret_id} is in its grace period until {until}")
        self.secret_id, self.until = secret_id, until


def grace_until(seen: Observed, *, now: datetime, emergency: bool) -> datetime | None:
    """When a non-emergency rotation may run, if the previous secret's grace has not ended.

    A rotation makes room by revoking the previous secret; before its ``revoke_after`` an
    application that cached it (well inside the grace period) would be locked out. Only an
    emergency cuts a grace period short.
    """
    candidates = [seen.promised_until]
    if seen.previous_id is not None:
        candidates.append(seen.previous_revoke_after)
    pending = [c for c in candidates if c is not None and c > now]
    return None if emergency or not pending else max(pending)


def make_room(
    seen: Observed,
    who: Identified,
    *,
    revoke_older_if_unidentified: bool,
    now: datetime | None = None,
    emergency: bool = False,
) -> MakeRoom:
    """Vonage allows two secrets: with two, revoke the one that is not current — never a
    previous secret inside its grace period unless ``emergency`` (``GraceNotOver``)."""
    room = _make_room(seen, who, revoke_older_if_unidentified=revoke_older_if_unidentified)
    if now is None or seen.previous_id not in room.revoke:
        return room
    until = grace_until(seen, now=now, emergency=False)
    if until is None:
        return room
    if not emergency:
        raise GraceNotOver(seen.previous_id or "", until)
    return replace(room, cut_grace=until)


def _make_room(seen: Observed, who: Identified, *, revoke_older_if_unidentified: bool) -> MakeRoom:
    ids = seen.vonage_ids
    if len(ids) < 2:
        return MakeRoom(revoke=(), old_id=who.old_id, reason="room for a new secret")
    keep = who.current_id or who.old_id
    if keep is None:
        if not revoke_older_if_unidentified:
            raise Unidentified(who.problem or "cannot tell which secret is current")
        return MakeRoom(
            revoke=ids[:-1],
            old_id=ids[-1],
            reason="current unidentified; revoking the older (rotation.on_unidentified)",
        )
    others = tuple(i for i in ids if i != keep)
    known = seen.previous_id in others
    return MakeRoom(
        revoke=others,
        old_id=keep,
        reason="revoking the previous secret" if known else "revoking an orphan secret",
    )


class Resume(StrEnum):
    """What to do with a run a crash left unfinished."""

    FINISH_PROMOTION = "finish_promotion"  # current is already the new secret
    VERIFY = "verify"  # new secret is on Vonage, not yet current: verify, then promote
    FIND_CREATED = "find_created"  # a POST may have created it: look for its id
    ROLLBACK = "rollback"  # undo what is there
    ABANDON = "abandon"  # nothing was changed


@dataclass(frozen=True, kw_only=True)
class ResumeState:
    vonage_ids: tuple[str, ...]
    record_secret_id: str | None
    pending_of_run: bool  # Vault holds a pending secret staged by this run
    pending_secret_id: str | None
    run_new_secret_id: str | None


@dataclass(frozen=True, kw_only=True)
class Resumption:
    """How a crashed run goes on: an action, the new secret's id if known, and the step."""

    action: Resume
    new_id: str | None = None

    @property
    def start(self) -> Step | None:
        """The step of the rotation table the run continues from; None: it does not continue
        (it is rolled back or abandoned, or its new secret must first be looked for)."""
        return _RESUME_AT.get(self.action)

    @classmethod
    def found(cls, new_id: str | None) -> Resumption:
        """After ``FIND_CREATED``: verify what the POST created, or roll back if it made none."""
        if new_id is None:
            return cls(action=Resume.ROLLBACK)
        return cls(action=Resume.VERIFY, new_id=new_id)


_RESUME_AT = {Resume.VERIFY: Step.VERIFY, Resume.FINISH_PROMOTION: Step.REVOKE}


def resume(state: ResumeState) -> Resumption:
    """Decide how to finish a crashed run from what Vault and Vonage show now."""
    new_id = state.run_new_secret_id or state.pending_secret_id
    if new_id is not None and state.record_secret_id == new_id:
        return Resumption(action=Resume.FINISH_PROMOTION, new_id=new_id)
    if state.pending_of_run:
        if new_id is None:
            return Resumption(action=Resume.FIND_CREATED)
        if new_id in state.vonage_ids:
            return Resumption(action=Resume.VERIFY, new_id=new_id)
        return Resumption(action=Resume.ROLLBACK)  # created and already revoked, or never there
    if new_id is not None and new_id in state.vonage_ids:
        return Resumption(action=Resume.ROLLBACK, new_id=new_id)  # no value kept: revoke it
    return Resumption(action=Resume.ABANDON)


def created_candidates(
    ids_with_times: list[tuple[str, datetime]],
    known: set[str],
    since: datetime,
    skew: timedelta = timedelta(minutes=5),
) -> list[str]:
    """Secrets that appeared after ``since`` and nobody knows: what an ambiguous POST made."""
    return [i for i, created in ids_with_times if i not in known and created >= since - skew]


def verify_backoff(attempt: int, *, base: float = 0.25, cap: float = 5.0) -> float:
    """Seconds to wait before retry ``attempt`` (1-based) of an ambiguous POST."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


VERIFY_STEP = 0.25  # how late a new secret that works is seen, while propagation is typical
VERIFY_RATIO = 0.125  # later on, how late relative to the time already waited
VERIFY_CAP = 5.0


def verify_wait(elapsed: float) -> float:
    """Seconds until the next verification attempt, ``elapsed`` seconds after the first.

    Every 0.25 s for the first 2 s (the usual propagation: seen within 0.25 s of working), then
    an eighth of the time waited so far, capped at 5 s: seen within 12.5 % of a long propagation
    for a number of calls that grows with its logarithm (0 s: 1 call, 2 s: 9, 30 s: ~32), and
    never more than 4 calls/s of the shared rate limit.
    """
    return min(VERIFY_CAP, max(VERIFY_STEP, VERIFY_RATIO * max(0.0, elapsed)))


def verify_schedule(propagation: float, timeout: float) -> list[float]:
    """When (seconds after the first) verification attempts happen until one at or after
    ``propagation`` or the last that fits in ``timeout``: what a propagation costs in calls."""
    times = [0.0]
    while times[-1] < propagation:
        nxt = times[-1] + verify_wait(times[-1])
        if nxt > timeout:
            break
        times.append(nxt)
    return times


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What a rotation would do now, in words an operator can check before it happens."""

    current_id: str | None
    actions: tuple[str, ...]
    blocked: str | None = None
    waits_until: datetime | None = None  # the previous secret's grace period ends then


def plan(
    seen: Observed,
    *,
    emergency: bool,
    grace_period: timedelta,
    revoke_older_if_unidentified: bool,
    now: datetime | None = None,
) -> Plan:
    """The actions ``rotate`` would take given ``seen`` — computed, never performed."""
    who = identify(seen)
    try:
        room = make_room(seen, who, revoke_older_if_unidentified=revoke_older_if_unidentified)
    except Unidentified as exc:
        return Plan(current_id=None, actions=(), blocked=str(exc))
    waits = None if now is None else grace_until(seen, now=now, emergency=emergency)
    actions = [f"wait until {iso(waits)} (the previous secret's grace period)"] if waits else []
    cut = now is not None and emergency and grace_until(seen, now=now, emergency=False)
    actions += [
        f"revoke {secret_id} ({room.reason})"
        + (" cutting its grace period short" if cut and secret_id == seen.previous_id else "")
        for secret_id in room.revoke
    ]
    actions += [
        "generate a new secret and stage it in Vault as pending",
        "create it on Vonage",
        "verify that it authenticates (get-balance)",
        "promote it to current in Vault",
    ]
    if emergency:
        actions.append("revoke every other secret of the key (emergency)")
    elif room.old_id is None:
        pass
    elif grace_period > timedelta(0):
        actions.append(f"revoke {room.old_id} after the grace period ({grace_period})")
    else:
        actions.append(f"revoke {room.old_id}")
    return Plan(current_id=who.current_id, actions=tuple(actions), waits_until=waits)
