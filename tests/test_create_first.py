"""Create first: a scheduled rotation of a key whose state Vault knows completely makes three
Vonage calls (create, verify, revoke) instead of four, Vonage's two-secret cap checking Vault's
picture; anything the picture missed sends the run the full path, keeping every promise."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import hvac
import pytest

from rotator.audit import Event, RunStatus
from rotator.devtools.simulator import Fault
from rotator.errors import RotationError
from rotator.rotation import Outcome, Rotator
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.consumers import Application
from tests.invariants import violations

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SUB = "sub00001"
SECRETS = f"/accounts/{SUB}/secrets"
BALANCE = "/account/get-balance"
EXCESS = json.dumps(
    {
        "type": "https://developer.nexmo.com/api-errors/account/secret-management"
        "#add-excess-secret",
        "title": "Secret Limit Exceeded",
        "detail": "Account already has the maximum number of secrets",
        "instance": "c5b4a8a0-6c1f-4e5e-9a4b-3f1f0e7b2d11",
    }
)


@pytest.fixture
def known(world: World) -> World:
    """The primary in Vault; the subaccount's record with its id: Vault knows the key."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    return world


def vault_reader(world: World, api_key: str) -> Callable[[], str | None]:
    """How an application reads Vault: its own client, the key's current record."""
    client = hvac.Client(url=world.openbao.url, token=world.openbao.root_token.reveal())

    def read() -> str | None:
        record = client.secrets.kv.v2.read_secret_version(
            path=f"{world.prefix}/vonage/{api_key}",
            mount_point="secret",
            raise_on_deleted_version=True,
        )
        value: str = record["data"]["data"]["api_secret"]
        return value

    return read


def rotate(world: World, api_key: str = SUB, **kwargs: Any) -> Outcome:
    return world.services().rotator.rotate(api_key, actor="tester", reason="test", **kwargs)


def calls_during(world: World, action: Any) -> tuple[Any, list[tuple[str, str, int | None]]]:
    """Run ``action``; the (method, path, status) of the Vonage calls it made."""
    before = len(world.sim.calls)
    result = action()
    made = [(c.method, c.path, c.status) for c in world.sim.calls[before:]]
    return result, [c for c in made if c[1] != "/sms/json"]


def events(world: World, outcome: Outcome, step: str) -> list[Event]:
    return [e for e in world.services().audit.events(run_id=outcome.run.id) if e.step == step]


def assert_rotated(world: World, outcome: Outcome) -> None:
    """The new secret is the key's only one, current in Vault and working; nothing broken."""
    assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.error
    record = world.vault_record(SUB)
    assert record is not None
    assert world.sim.secret_ids(SUB) == [record["secret_id"]] == [outcome.run.new_secret_id]
    assert world.current_authenticates(SUB)
    assert violations(world, SUB, world.services().audit) == []


def test_a_rotation_of_a_key_vault_knows_makes_three_calls(known: World) -> None:
    """create, verify, revoke: no listing; Vonage's 201 and 204 settle the key's state."""
    old = known.sim.secret_ids(SUB)[0]
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert calls == [
        ("POST", SECRETS, 201),
        ("GET", BALANCE, 200),
        ("DELETE", f"{SECRETS}/{old}", 204),
    ]
    assert_rotated(known, outcome)


def test_the_primary_is_created_first_too(known: World) -> None:
    """The primary's record with its id: three calls, the last as the primary's new secret."""
    known.seed_primary(with_id=True)
    old = known.sim.secret_ids(PRIMARY)[0]
    outcome, calls = calls_during(known, lambda: rotate(known, PRIMARY))
    primary_secrets = f"/accounts/{PRIMARY}/secrets"
    assert [c[:2] for c in calls] == [
        ("POST", primary_secrets),
        ("GET", BALANCE),
        ("DELETE", f"{primary_secrets}/{old}"),
    ]
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert known.current_authenticates(PRIMARY)
    assert not known.seeded_authenticates(PRIMARY)
    assert violations(known, PRIMARY, known.services().audit) == []


def test_the_audit_log_says_the_run_relied_on_vault(known: World) -> None:
    """inspect records that it did not list and which id Vault named; make room is skipped."""
    old = known.sim.secret_ids(SUB)[0]
    outcome = rotate(known)
    [inspect] = events(known, outcome, "inspect")
    assert inspect.detail is not None
    assert (inspect.detail["listed"], inspect.detail["vault_secret_id"]) == (False, old)
    assert "vonage_secret_ids" not in inspect.detail
    [room] = events(known, outcome, "make_room")
    assert room.outcome == "skipped"
    assert room.detail == {"current_id": old, "old_id": old, "listed": False}
    [revoke] = events(known, outcome, "revoke")
    assert revoke.detail == {
        "revoked": [old],
        "remaining": [outcome.run.new_secret_id],
        "listed": False,
    }


def test_a_first_rotation_lists_first(known: World) -> None:
    """A subaccount with no record in Vault is listed before anything is created."""
    known.vault_admin.secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"{known.prefix}/vonage/{SUB}", mount_point="secret"
    )
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert [c[:2] for c in calls] == [
        ("GET", SECRETS),
        ("POST", SECRETS),
        ("GET", BALANCE),
        ("DELETE", f"{SECRETS}/{outcome.run.old_secret_id}"),
    ]
    [inspect] = events(known, outcome, "inspect")
    assert inspect.detail is not None
    assert inspect.detail["why"] == "Vault's record names no current secret id"
    assert_rotated(known, outcome)


def test_an_emergency_still_lists_before_creating_and_before_revoking(known: World) -> None:
    """An emergency revokes every other secret, known or not: it lists twice, as before."""
    outcome, calls = calls_during(known, lambda: rotate(known, emergency=True))
    assert [c[:2] for c in calls] == [
        ("GET", SECRETS),
        ("POST", SECRETS),
        ("GET", BALANCE),
        ("GET", SECRETS),
        ("DELETE", f"{SECRETS}/{outcome.run.old_secret_id}"),
    ]
    assert_rotated(known, outcome)


def test_a_grace_period_leaves_two_calls_to_the_rotation(known: World) -> None:
    """With a grace period the rotation creates and verifies; the deferred revocation later
    deletes and confirms by listing, as it always did (it has no picture of its own)."""
    known.configure(rotation={"grace_period": "1h"})
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert outcome.run.status == RunStatus.AWAITING_REVOKE
    assert [c[:2] for c in calls] == [("POST", SECRETS), ("GET", BALANCE)]
    rotator = known.services().rotator
    done, later = calls_during(known, lambda: rotator.complete_revocation(outcome.run))
    assert done.status == RunStatus.SUCCEEDED
    assert [c[:2] for c in later] == [
        ("DELETE", f"{SECRETS}/{outcome.run.old_secret_id}"),
        ("GET", SECRETS),
    ]
    revoke = events(known, outcome, "revoke")[-1]
    assert revoke.detail is not None
    assert revoke.detail["listed"] is True, "the audit log says the revocation was listed"
    assert violations(known, SUB, known.services().audit) == []


def test_a_previous_secret_awaiting_revocation_sends_the_run_the_full_path(known: World) -> None:
    """A key whose old secret is still kept (grace over, revocation not done yet) is listed,
    and making room revokes the previous secret, as before."""
    known.configure(rotation={"grace_period": "1s"})
    first = rotate(known)
    assert first.run.status == RunStatus.AWAITING_REVOKE
    second = rotate(known, grace_wait=timedelta(seconds=30))
    [inspect] = events(known, second, "inspect")
    assert inspect.detail is not None
    assert inspect.detail["listed"] is True
    [room] = events(known, second, "make_room")
    assert room.detail is not None
    assert room.detail["revoked"] == [first.run.old_secret_id]


# -- an attacker changed the key behind Vault's back ------------------------------------------


@pytest.mark.parametrize("status", [403, 400])
def test_an_intruder_secret_is_found_by_the_refusal_and_revoked_to_make_room(
    known: World, status: int
) -> None:
    """A secret added on Vonage behind Vault's back fills the key: Vonage refuses the POST
    (403 add-excess-secret, or the spec's 400), the run lists, makes room by revoking the
    orphan, and creates again; Vault's secret worked throughout."""
    known.sim.excess_secret_status = status
    intruder = known.sim.add_secret(SUB, "Intruder1Secret", propagated=True)
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert [c[:2] for c in calls][:4] == [
        ("POST", SECRETS),
        ("GET", SECRETS),
        ("DELETE", f"{SECRETS}/{intruder}"),
        ("POST", SECRETS),
    ]
    assert calls[0][2] == status
    refused, created = events(known, outcome, "create")
    assert (refused.outcome, created.outcome) == ("key_full", "ok")
    assert refused.detail is not None
    assert refused.detail["unstaged"] is True
    listing = events(known, outcome, "inspect")[-1]
    assert listing.detail is not None
    assert intruder in listing.detail["vonage_secret_ids"]
    room = events(known, outcome, "make_room")[-1]
    assert room.detail is not None
    assert (room.detail["revoked"], room.detail["reason"]) == (
        [intruder],
        "revoking an orphan secret",
    )
    assert_rotated(known, outcome)


def test_an_intruder_beside_a_vanished_current_secret_is_refused_as_before(known: World) -> None:
    """Our current secret deleted and two unknown ones in its place: the refusal sends the run
    to list, and it refuses to guess (as any run does); nothing staged is left behind."""
    old = known.sim.secret_ids(SUB)[0]
    known.sim.add_secret(SUB, "Intruder1Secret", propagated=True)
    known.sim.delete_secret(SUB, old)
    known.sim.add_secret(SUB, "Intruder2Secret", propagated=True)
    before = known.sim.secret_ids(SUB)
    outcome = rotate(known)
    assert outcome.run.status == RunStatus.FAILED
    assert "rotator adopt" in (outcome.run.error or "")
    assert known.sim.secret_ids(SUB) == before
    state = known.vault_record(SUB, "rotator-state") or {}
    assert state.get("pending") is None


def swap_current_for_an_attackers(world: World) -> tuple[str, str]:
    """Vault's current secret deleted on Vonage and an attacker's added in its place."""
    old = world.sim.secret_ids(SUB)[0]
    attacker = world.sim.add_secret(SUB, "Attacker1Secret", propagated=True)
    world.sim.delete_secret(SUB, old)
    return old, attacker


def test_a_swapped_current_secret_is_found_by_the_404_and_revoked(known: World) -> None:
    """The POST fits (one slot was free), the new secret is verified and promoted, the DELETE
    of the old one gets a 404 and the run lists: the attacker's secret stands where the old one
    was, and is revoked as a run that listed first would have (taking it for the old one)."""
    old, attacker = swap_current_for_an_attackers(known)
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert calls[-3:] == [
        ("DELETE", f"{SECRETS}/{old}", 404),
        ("GET", SECRETS, 200),
        ("DELETE", f"{SECRETS}/{attacker}", 204),
    ]
    [revoke] = events(known, outcome, "revoke")
    assert revoke.detail is not None
    assert revoke.detail["listed"] is True
    assert revoke.detail["unknown"] == revoke.detail["swapped_in"] == [attacker]
    assert revoke.detail["revoked"] == [old, attacker]
    assert revoke.detail["remaining"] == [outcome.run.new_secret_id]
    assert_rotated(known, outcome)


def test_an_ambiguous_answer_about_the_swapped_in_secret_is_confirmed_by_listing(
    known: World,
) -> None:
    """The stranger's DELETE applied but its answer was lost: a second listing shows it gone."""
    _, attacker = swap_current_for_an_attackers(known)
    known.sim.inject(
        Fault(action="reset_after_apply", method="DELETE", path=f"{SECRETS}/{attacker}")
    )
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert calls[-1] == ("GET", SECRETS, 200)
    [revoke] = events(known, outcome, "revoke")
    assert revoke.detail is not None
    assert revoke.detail["remaining"] == [outcome.run.new_secret_id]
    assert_rotated(known, outcome)


def test_a_forged_404_for_the_old_secret_revokes_nothing_else(known: World) -> None:
    """A spoofed "not found" for the old secret, which is still there: the listing shows it,
    so nothing was swapped; the run fails on the secret that survived, revokes nothing more,
    and the new secret stays current and working in Vault."""
    old = known.sim.secret_ids(SUB)[0]
    gone = json.dumps({"type": "https://developer.vonage.com/api-errors#not-found"})
    known.sim.inject(
        Fault(action="body", method="DELETE", path=f"{SECRETS}/{old}", status=404, body=gone)
    )
    before = len(known.sim.calls)
    with pytest.raises(RotationError, match="survived revocation"):
        rotate(known)
    deletes = [(c.path, c.status) for c in known.sim.calls[before:] if c.method == "DELETE"]
    assert deletes == [(f"{SECRETS}/{old}", 404)]
    record = known.vault_record(SUB)
    assert record is not None
    assert known.sim.secret_ids(SUB) == [old, record["secret_id"]]
    assert known.current_authenticates(SUB)


def test_a_spoofed_key_full_refusal_only_costs_a_listing(known: World) -> None:
    """A forged 403 add-excess-secret (the key has room) sends the run to list; it finds the
    key as Vault said, makes no room, and creates on its second POST."""
    known.sim.inject(Fault(action="body", method="POST", path=SECRETS, status=403, body=EXCESS))
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert [c[:2] for c in calls][:3] == [("POST", SECRETS), ("GET", SECRETS), ("POST", SECRETS)]
    room = events(known, outcome, "make_room")[-1]
    assert room.outcome == "skipped"
    assert_rotated(known, outcome)


# -- an ambiguous POST, a crash, an application ------------------------------------------------


def test_an_ambiguous_post_is_reconciled_by_listing(known: World) -> None:
    """A POST that applied but whose answer was lost is found by listing, not re-sent; the run
    then confirms its DELETE by listing too (only a clean 201 proves Vault's picture)."""
    known.sim.inject(Fault(action="reset_after_apply", method="POST", path=SECRETS))
    outcome, calls = calls_during(known, lambda: rotate(known))
    assert [c[:2] for c in calls].count(("POST", SECRETS)) == 1
    [create] = events(known, outcome, "create")
    assert create.detail is not None
    assert create.detail["reconciled"] is True
    assert calls[-1][:2] == ("GET", SECRETS)
    assert_rotated(known, outcome)


def test_an_ambiguous_post_never_promotes_a_secret_it_did_not_create(known: World) -> None:
    """An unanswered POST that never applied, beside a secret someone added a moment before:
    the listing cannot tell them apart by time, but verification with the run's own value
    never authenticates, so Vault keeps its working secret and the run rolls back."""
    known.configure(rotation={"verify_timeout": "1s"})
    old = known.sim.secret_ids(SUB)[0]
    known.sim.add_secret(SUB, "Intruder1Secret", propagated=True)
    known.sim.inject(Fault(action="reset_before_apply", method="POST", path=SECRETS))
    outcome = rotate(known)
    assert outcome.run.status == RunStatus.ROLLED_BACK
    record = known.vault_record(SUB)
    assert record is not None
    assert record["secret_id"] == old
    assert known.current_authenticates(SUB)
    assert old in known.sim.secret_ids(SUB)
    assert violations(known, SUB, known.services().audit) == []


def test_a_crash_after_the_refusal_leaves_nothing_to_reconcile(known: World) -> None:
    """A run that stops right after Vonage refused its POST (key full) has already dropped its
    staged value: the next run abandons it and rotates, revoking the intruder to make room."""
    known.sim.add_secret(SUB, "Intruder1Secret", propagated=True)
    services = known.services()

    def die_after_the_refusal(point: str) -> None:
        if point == "after:create":
            raise KeyboardInterrupt  # stands in for the SIGKILL the crash suite sends

    parts = {"vault": services.vault, "vonage": services.vonage, "audit": services.audit}
    dying = Rotator(
        services.config, leases=services.leases, boundary=die_after_the_refusal, **parts
    )
    with pytest.raises(KeyboardInterrupt):
        dying.rotate(SUB, actor="tester", reason="crash")
    state = known.vault_record(SUB, "rotator-state") or {}
    assert state.get("pending") is None
    outcome = rotate(known)
    assert [r.status for r in outcome.resumed] == [RunStatus.ROLLED_BACK]
    assert_rotated(known, outcome)


def test_an_application_reading_vault_never_gets_a_401(known: World) -> None:
    """An application re-reading Vault more often than the grace period calls get-balance
    throughout several back-to-back create-first rotations: never refused."""
    known.configure(rotation={"grace_period": "1s"})
    app = Application(known.sim.rest_url, SUB, vault_reader(known, SUB), cache_for=0.5)
    rotator = known.services().rotator
    app.start()
    fast: list[bool] = []
    try:
        for _ in range(5):
            outcome = rotator.rotate(SUB, actor="tester", reason="scheduled")
            assert outcome.run.status == RunStatus.AWAITING_REVOKE, outcome.run.error
            [inspect] = events(known, outcome, "inspect")
            fast.append(inspect.detail is not None and inspect.detail["listed"] is False)
            assert outcome.run.revoke_after is not None
            while time.time() < outcome.run.revoke_after.timestamp():
                time.sleep(0.05)  # the grace period the application relies on
            assert rotator.complete_revocation(outcome.run).status == RunStatus.SUCCEEDED
    finally:
        app.stop()
    assert fast == [True] * 5
    assert app.refused == []
    assert len(app.seen) >= 5
    assert violations(known, SUB, known.services().audit) == []
