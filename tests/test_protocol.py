"""The protocol's pure decisions (rotator.protocol), branch by branch, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.protocol import (
    Identified,
    MakeRoom,
    Observed,
    Resume,
    ResumeState,
    Resumption,
    Step,
    Unidentified,
    VaultKnows,
    created_candidates,
    identify,
    make_room,
    must_list,
    plan,
    resume,
    verify_backoff,
    verify_schedule,
    verify_wait,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def seen(
    *ids: str,
    record: bool = True,
    record_id: str | None = None,
    authenticates: bool | None = None,
    previous: str | None = None,
    adopted: str | None = None,
) -> Observed:
    return Observed(
        vonage_ids=ids,
        record_exists=record,
        record_secret_id=record_id,
        record_authenticates=authenticates,
        previous_id=previous,
        adopted_id=adopted,
    )


def room(observed: Observed, *, revoke_older: bool = False) -> MakeRoom:
    return make_room(observed, identify(observed), revoke_older_if_unidentified=revoke_older)


# -- identify ----------------------------------------------------------------------------------


def test_identify_trusts_a_recorded_id_that_is_on_vonage() -> None:
    """Vault's secret id, present on Vonage, is current (whatever else is there)."""
    assert identify(seen("a", "b", record_id="b")) == Identified(current_id="b", old_id="b")


def test_identify_uses_an_adopted_id() -> None:
    """An id an operator adopted is what applications use, though Vault holds no value for it."""
    who = identify(seen("a", "b", record=False, adopted="a"))
    assert who == Identified(current_id=None, old_id="a")


def test_identify_ignores_an_adopted_id_no_longer_on_vonage() -> None:
    """An adoption of a secret that has since gone does not name anything."""
    who = identify(seen("a", "b", record=False, adopted="gone"))
    assert (who.current_id, who.old_id) == (None, None)
    assert who.problem is not None


def test_identify_takes_the_other_of_two_when_one_is_the_recorded_previous() -> None:
    """With a record lacking the id, the secret that is not rotator's previous one is current."""
    who = identify(seen("a", "b", record_id=None, previous="a"))
    assert who == Identified(current_id="b", old_id="b")


def test_identify_does_not_trust_previous_when_the_record_fails_to_authenticate() -> None:
    """A stale record (its secret refused) cannot vouch for which of two secrets is current."""
    who = identify(seen("a", "b", record_id=None, previous="a", authenticates=False))
    assert who.current_id is None
    assert who.problem == "2 secrets and Vault's record names no secret id"


def test_identify_takes_the_only_secret_when_the_record_is_usable() -> None:
    """One secret on Vonage and a record (without id) that is not known to fail: that one."""
    assert identify(seen("a", record_id=None)) == Identified(current_id="a", old_id="a")


def test_identify_replaces_the_only_secret_of_a_key_without_record() -> None:
    """A never-rotated subaccount: its one secret is in use but rotator holds no value for it."""
    assert identify(seen("a", record=False)) == Identified(current_id=None, old_id="a")


def test_identify_replaces_the_only_secret_when_the_record_is_stale() -> None:
    """A record whose secret no longer authenticates is not the one on Vonage."""
    who = identify(seen("a", record_id="gone", authenticates=False))
    assert who == Identified(current_id=None, old_id="a")


def test_identify_with_no_secret_names_nothing() -> None:
    """A key without secrets has no current and nothing to replace."""
    assert identify(seen(record=False)) == Identified(current_id=None, old_id=None)


def test_identify_explains_two_secrets_without_any_record() -> None:
    """Two secrets and no Vault record: unidentifiable, and the problem says why."""
    who = identify(seen("a", "b", record=False))
    assert who.problem == "2 secrets and Vault holds no record of which one is current"


def test_identify_explains_a_record_naming_a_vanished_id() -> None:
    """Two secrets and a record whose id is on neither: the problem names the id."""
    who = identify(seen("a", "b", record_id="zzz", authenticates=True))
    assert (who.current_id, who.old_id) == (None, None)
    assert who.problem == "2 secrets and Vault's secret id zzz is not on Vonage"


# -- make_room ---------------------------------------------------------------------------------


def test_make_room_with_one_secret_revokes_nothing() -> None:
    """One secret leaves room for the new one; it is the one to replace."""
    assert room(seen("a", record_id="a")) == MakeRoom(
        revoke=(), old_id="a", reason="room for a new secret"
    )


def test_make_room_with_no_secret_revokes_nothing() -> None:
    """No secret at all: nothing to revoke and nothing to replace."""
    assert room(seen(record=False)).revoke == ()


def test_make_room_revokes_a_known_previous() -> None:
    """Two secrets, the other being rotator's previous one: it goes, the current stays."""
    assert room(seen("a", "b", record_id="b", previous="a")) == MakeRoom(
        revoke=("a",), old_id="b", reason="revoking the previous secret"
    )


def test_make_room_revokes_an_orphan() -> None:
    """Two secrets, the other unknown to rotator: it is an orphan and goes."""
    assert room(seen("a", "b", record_id="a")) == MakeRoom(
        revoke=("b",), old_id="a", reason="revoking an orphan secret"
    )


def test_make_room_never_revokes_the_current_one() -> None:
    """Whichever position the current secret has, it is never in the revoke list."""
    for current in ("a", "b"):
        decided = room(seen("a", "b", record_id=current))
        assert current not in decided.revoke
        assert decided.old_id == current


def test_make_room_keeps_an_adopted_secret() -> None:
    """An adopted secret is kept and the other one revoked."""
    decided = room(seen("a", "b", record=False, adopted="b"))
    assert (decided.revoke, decided.old_id) == (("a",), "b")


def test_make_room_refuses_to_guess_between_two_unidentified() -> None:
    """Two secrets and no way to tell: stop, carrying the reason."""
    with pytest.raises(Unidentified, match="Vault holds no record"):
        room(seen("a", "b", record=False))


def test_make_room_may_revoke_the_older_when_configured() -> None:
    """With rotation.on_unidentified: revoke_older the older goes, the newer is replaced."""
    decided = room(seen("old", "new", record=False), revoke_older=True)
    assert (decided.revoke, decided.old_id) == (("old",), "new")
    assert "on_unidentified" in decided.reason


def test_make_room_falls_back_to_a_generic_reason_without_a_problem() -> None:
    """An Identified without a problem text still refuses with a readable reason."""
    who = Identified(current_id=None, old_id=None)
    with pytest.raises(Unidentified, match="cannot tell which secret is current"):
        make_room(seen("a", "b", record=False), who, revoke_older_if_unidentified=False)


# -- resume ------------------------------------------------------------------------------------


def state(
    *ids: str,
    record_id: str | None = "old",
    mine: bool = True,
    pending_id: str | None = None,
    run_new: str | None = None,
) -> ResumeState:
    return ResumeState(
        vonage_ids=ids,
        record_secret_id=record_id,
        pending_of_run=mine,
        pending_secret_id=pending_id,
        run_new_secret_id=run_new,
    )


def test_resume_finishes_a_run_already_promoted() -> None:
    """Vault's current id is the run's new one: only tidying and revocation are left."""
    decided = resume(state("old", "new", record_id="new", mine=False, run_new="new"))
    assert decided == Resumption(action=Resume.FINISH_PROMOTION, new_id="new")


def test_resume_finishes_a_promotion_known_only_from_pending() -> None:
    """The new id recorded only in Vault's pending slot also counts."""
    decided = resume(state("old", "new", record_id="new", pending_id="new"))
    assert decided == Resumption(action=Resume.FINISH_PROMOTION, new_id="new")


def test_resume_looks_for_what_an_unanswered_post_created() -> None:
    """Staged, but no id recorded anywhere: list Vonage to find out whether the POST applied."""
    assert resume(state("old")) == Resumption(action=Resume.FIND_CREATED)


def test_resume_verifies_a_created_secret() -> None:
    """Staged and on Vonage but not current: verify it, then promote it."""
    assert resume(state("old", "new", pending_id="new")) == Resumption(
        action=Resume.VERIFY, new_id="new"
    )


def test_resume_verifies_when_only_the_run_row_has_the_id() -> None:
    """The audit row knows the id though Vault's pending does not yet."""
    assert resume(state("old", "new", run_new="new")) == Resumption(
        action=Resume.VERIFY, new_id="new"
    )


def test_resume_rolls_back_a_staged_secret_that_is_gone() -> None:
    """Staged, with an id no longer on Vonage: drop the staged value."""
    assert resume(state("old", pending_id="new")) == Resumption(action=Resume.ROLLBACK)


def test_resume_revokes_a_created_secret_whose_value_is_not_kept() -> None:
    """On Vonage with no staged value of this run: unusable, so revoke it."""
    assert resume(state("old", "new", mine=False, run_new="new")) == Resumption(
        action=Resume.ROLLBACK, new_id="new"
    )


def test_resume_abandons_a_run_that_changed_nothing() -> None:
    """Nothing staged and nothing created: the run just ends."""
    assert resume(state("old", mine=False)) == Resumption(action=Resume.ABANDON)


def test_resume_abandons_a_run_whose_secret_is_already_gone() -> None:
    """Created once, since revoked, nothing staged: nothing is left to undo."""
    assert resume(state("old", mine=False, run_new="new")) == Resumption(action=Resume.ABANDON)


def test_resume_continues_a_created_secret_at_the_verify_step() -> None:
    """A run to verify re-enters the rotation table at the verify step."""
    assert resume(state("old", "new", pending_id="new")).start is Step.VERIFY


def test_resume_continues_a_promoted_run_at_the_revoke_step() -> None:
    """A run already promoted re-enters the rotation table at the revoke step."""
    assert resume(state("old", "new", record_id="new", pending_id="new")).start is Step.REVOKE


def test_resume_does_not_continue_a_run_it_rolls_back() -> None:
    """A run to roll back does not re-enter the table."""
    assert resume(state("old", pending_id="new")).start is None


def test_found_secret_is_verified() -> None:
    """What an unanswered POST created is verified next."""
    assert Resumption.found("new") == Resumption(action=Resume.VERIFY, new_id="new")


def test_nothing_found_is_rolled_back() -> None:
    """An unanswered POST that created nothing leaves only the staged value to drop."""
    assert Resumption.found(None) == Resumption(action=Resume.ROLLBACK)


# -- created_candidates ------------------------------------------------------------------------


def test_created_candidates_are_new_and_unknown() -> None:
    """Only secrets nobody knows, made since the run started, are what the POST made."""
    listed = [
        ("known", NOW + timedelta(seconds=1)),
        ("ancient", NOW - timedelta(days=3)),
        ("fresh", NOW + timedelta(seconds=2)),
    ]
    assert created_candidates(listed, {"known"}, NOW) == ["fresh"]


def test_created_candidates_allow_for_clock_skew() -> None:
    """Vonage's clock may be a few minutes behind ours: a secret stamped just before counts."""
    listed = [("skewed", NOW - timedelta(minutes=4)), ("older", NOW - timedelta(minutes=6))]
    assert created_candidates(listed, set(), NOW) == ["skewed"]


def test_created_candidates_can_be_none() -> None:
    """Nothing new on Vonage: the POST did not apply."""
    assert created_candidates([("known", NOW)], {"known"}, NOW) == []


# -- verify_backoff ----------------------------------------------------------------------------


def test_verify_backoff_doubles_from_a_quarter_second() -> None:
    """Waits between ambiguous-POST retries grow 0.25, 0.5, 1, 2, 4 seconds."""
    assert [verify_backoff(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_verify_backoff_is_capped() -> None:
    """However many attempts, no wait exceeds the cap."""
    assert verify_backoff(50) == 5.0
    assert verify_backoff(0) == 0.25


# -- verify_wait -------------------------------------------------------------------------------


def test_verify_polls_every_quarter_second_while_propagation_is_typical() -> None:
    """For the first 2 s, a secret that starts to work is seen within 0.25 s."""
    assert {verify_wait(t / 10) for t in range(21)} == {0.25}


def test_verify_wait_grows_with_the_time_waited_and_is_capped() -> None:
    """After 2 s the wait is an eighth of the time waited, never more than 5 s."""
    assert verify_wait(8.0) == 1.0
    assert verify_wait(400.0) == 5.0
    assert verify_wait(-1.0) == 0.25


@pytest.mark.parametrize(
    ("propagation", "calls", "seen_by"), [(0.0, 1, 0.0), (2.0, 9, 2.0), (30.0, 32, 30.1)]
)
def test_verify_schedule_costs(propagation: float, calls: int, seen_by: float) -> None:
    """Propagation 0, 2 and 30 s cost 1, 9 and 32 calls and are seen within 0.25 s / 0.1 s."""
    times = verify_schedule(propagation, timeout=60.0)
    assert len(times) == calls
    assert propagation <= times[-1] <= seen_by


def test_verify_schedule_stops_at_the_timeout() -> None:
    """A secret that never works costs attempts only while they fit in verify_timeout."""
    times = verify_schedule(float("inf"), timeout=10.0)
    assert times[-1] <= 10.0
    assert times[-1] + verify_wait(times[-1]) > 10.0


# -- must_list: create first when Vault knows the key ------------------------------------------


def knows(**kwargs: object) -> VaultKnows:
    """A key whose Vault record names secret "a" and nothing else, changed by ``kwargs``."""
    fields: dict[str, object] = {"emergency": False, "record_secret_id": "a"}
    fields.update(kwargs)
    return VaultKnows(**fields)  # type: ignore[arg-type]


def test_a_key_vault_knows_completely_is_created_first() -> None:
    """A current record with its id and nothing pending, kept, adopted or owed: no listing."""
    assert must_list(knows()) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"emergency": True}, "an emergency revokes every other secret, known or not"),
        ({"record_secret_id": None}, "Vault's record names no current secret id"),
        ({"pending": True}, "a staged secret of an unfinished run"),
        ({"previous": True}, "a previous secret is kept for its grace period or revocation"),
        ({"adopted": True}, "an adopted secret is still to be rotated away"),
        ({"owed_revocation": True}, "a run awaits revoking an old secret"),
    ],
)
def test_anything_vault_does_not_know_makes_the_run_list_first(
    change: dict[str, object], why: str
) -> None:
    """Each gap in Vault's picture (or an emergency) sends the run the full path, saying why."""
    assert must_list(knows(**change)) == why


def test_an_emergency_lists_even_for_a_key_vault_knows() -> None:
    """An emergency is named first: it lists whatever Vault knows."""
    assert must_list(knows(emergency=True, pending=True)) == (
        "an emergency revokes every other secret, known or not"
    )


# -- plan --------------------------------------------------------------------------------------


def make_plan(observed: Observed, **kwargs: object) -> tuple[str, ...]:
    options: dict[str, object] = {
        "emergency": False,
        "grace_period": timedelta(0),
        "revoke_older_if_unidentified": False,
    }
    options.update(kwargs)
    return plan(observed, **options).actions  # type: ignore[arg-type]


def test_plan_lists_the_whole_protocol_for_a_simple_key() -> None:
    """One current secret: stage, create, verify, promote, then revoke the old one."""
    assert make_plan(seen("a", record_id="a")) == (
        "generate a new secret and stage it in Vault as pending",
        "create it on Vonage",
        "verify that it authenticates (get-balance)",
        "promote it to current in Vault",
        "revoke a",
    )


def test_plan_starts_by_making_room() -> None:
    """With an orphan, the plan first revokes it, saying why."""
    assert make_plan(seen("a", "b", record_id="a"))[0] == "revoke b (revoking an orphan secret)"


def test_plan_defers_revocation_by_the_grace_period() -> None:
    """With a grace period the old secret's revocation waits."""
    actions = make_plan(seen("a", record_id="a"), grace_period=timedelta(hours=1))
    assert actions[-1] == "revoke a after the grace period (1:00:00)"


def test_plan_in_an_emergency_revokes_everything_else() -> None:
    """An emergency rotation revokes every other secret, whatever the grace period."""
    actions = make_plan(seen("a", record_id="a"), emergency=True, grace_period=timedelta(hours=1))
    assert actions[-1] == "revoke every other secret of the key (emergency)"


def test_plan_for_a_key_without_secrets_revokes_nothing() -> None:
    """Nothing to replace: the plan ends at promotion."""
    assert make_plan(seen(record=False))[-1] == "promote it to current in Vault"


def test_plan_is_blocked_when_the_current_one_is_unidentifiable() -> None:
    """Two unidentifiable secrets: no actions, and the reason instead."""
    decided = plan(
        seen("a", "b", record=False),
        emergency=False,
        grace_period=timedelta(0),
        revoke_older_if_unidentified=False,
    )
    assert decided.actions == ()
    assert decided.blocked == "2 secrets and Vault holds no record of which one is current"


def test_steps_are_named_as_in_the_audit_log() -> None:
    """Step values are the names audit events and pause points use."""
    assert [str(s) for s in Step][2:10] == [
        "inspect", "make_room", "generate", "stage", "create", "verify", "promote", "revoke",
    ]  # fmt: skip
