"""Faults on every Vonage call a rotation makes, injected by the simulator, are survived: the run
succeeds, or ends rolled back / failed with the old secret still current and working, or (after
promotion) is left for the next run, which finishes it. Never a broken promise."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.audit import Run, RunStatus
from rotator.devtools.simulator import Fault
from rotator.errors import RotatorError
from rotator.rotation import Outcome, Rotator
from rotator.services import Services
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World
from tests.invariants import violations

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SUB = "sub00001"
SECRETS = f"/accounts/{SUB}/secrets"
CALLS: dict[str, dict[str, Any]] = {
    "list": {"method": "GET", "path": SECRETS, "host": "api"},
    "create": {"method": "POST", "path": SECRETS, "host": "api"},
    "balance": {"method": "GET", "path": "/account/get-balance", "host": "rest"},
    "revoke": {"method": "DELETE", "path": f"{SECRETS}/*", "host": "api"},
}
FAULTS: dict[str, dict[str, Any]] = {
    "429": {"action": "status", "status": 429, "retry_after": 1},
    "503": {"action": "status", "status": 503},
    "timeout": {"action": "timeout", "delay": 1.0},  # vonage.timeout is 0.5s below
    "reset_before_apply": {"action": "reset_before_apply"},
    "reset_after_apply": {"action": "reset_after_apply"},
    "html_502": {"action": "html", "status": 502},
    "malformed_json": {"action": "malformed_json"},
    "huge_body": {"action": "huge_body"},
}
# Where a fault cannot be ridden out, what the run is expected to end as. Everything else succeeds:
# idempotent calls are retried, an ambiguous POST is reconciled by listing, verification retries.
# - the listing at inspect answered with an undocumented body: stop before changing anything.
EXPECTED: dict[tuple[str, str], RunStatus] = {
    ("list", "malformed_json"): RunStatus.FAILED,
    ("list", "huge_body"): RunStatus.FAILED,
}
# - a DELETE answered with an undocumented body after promotion: the new secret stays current and
#   the run is left for the next one (test_failure_after_promotion_is_finished_by_the_next_run).
AFTER_PROMOTION = {("revoke", "malformed_json"), ("revoke", "huge_body")}
MATRIX = [(c, f) for c in CALLS for f in FAULTS if (c, f) not in AFTER_PROMOTION]


@pytest.fixture
def seeded(world: World) -> World:
    """The primary in Vault, the subaccount with its id, short timeouts for fault tests."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(vonage={"timeout": "0.5s"}, rotation={"verify_timeout": "10s"})
    return world


def rotate(
    world: World, api_key: str = SUB, rotator: Rotator | None = None, *, emergency: bool = False
) -> Outcome:
    rotator = rotator or world.services().rotator
    return rotator.rotate(api_key, actor="fault-test", reason="faults", emergency=emergency)


def rotator_with(services: Services, **timing: Any) -> Rotator:
    """A Rotator over ``services`` with an injected ``sleep`` and/or ``clock``."""
    parts = {"vault": services.vault, "vonage": services.vonage, "audit": services.audit}
    return Rotator(services.config, leases=services.leases, **parts, **timing)


def only_run(world: World) -> Run:
    runs = world.services().audit.runs(api_key=SUB)
    assert len(runs) == 1
    return runs[0]


def current_works(world: World, api_key: str) -> bool:
    """Vault's current secret of the key authenticates (values stay out of assertion output)."""
    record = world.vault_record(api_key)
    return record is not None and world.sim.authenticates(api_key, record["api_secret"])


def seeded_works(world: World, api_key: str) -> bool:
    """The secret the simulator was seeded with still authenticates."""
    seeded = PRIMARY_SECRET if api_key == PRIMARY else SUBACCOUNTS[api_key]
    return world.sim.authenticates(api_key, seeded)


def assert_old_secret_kept(world: World) -> None:
    """Nothing changed for applications: the seeded secret is current, works, and is alone."""
    record = world.vault_record(SUB)
    assert record is not None
    assert record["secret_id"] == world.sim.secret_ids(SUB)[0]
    assert current_works(world, SUB)
    assert seeded_works(world, SUB)
    assert len(world.sim.secret_ids(SUB)) == 1
    state = world.vault_record(SUB, "rotator-state") or {}
    assert state.get("pending") is None


def assert_rotated(world: World, outcome: Outcome) -> None:
    """The new secret is the only one, current in Vault, working; the seeded one is gone."""
    record = world.vault_record(SUB)
    assert record is not None
    assert world.sim.secret_ids(SUB) == [record["secret_id"]] == [outcome.run.new_secret_id]
    assert current_works(world, SUB)
    assert not seeded_works(world, SUB)


@pytest.mark.parametrize(("call", "fault"), MATRIX)
def test_fault_on_each_call_is_survived(seeded: World, call: str, fault: str) -> None:
    """One fault on one Vonage call ends the run as expected with every promise kept."""
    world = seeded
    injected = world.sim.inject(Fault(**CALLS[call], **FAULTS[fault]))
    # A scheduled run of a key Vault knows creates first: the listing is an emergency's.
    outcome = rotate(world, emergency=call == "list")
    assert world.sim.fault_hits(injected) == 1, "the fault was acted out"
    expected = EXPECTED.get((call, fault), RunStatus.SUCCEEDED)
    assert outcome.run.status == expected, outcome.run.error
    if expected == RunStatus.SUCCEEDED:
        assert_rotated(world, outcome)
    else:
        assert_old_secret_kept(world)
        assert outcome.run.error
    assert violations(world, SUB, world.services().audit) == []


def test_post_applied_but_unanswered_is_reconciled_not_repeated(seeded: World) -> None:
    """A POST that took effect but whose answer was lost is found by listing, not re-sent."""
    world = seeded
    world.sim.inject(Fault(**CALLS["create"], action="reset_after_apply"))
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.SUCCEEDED
    posts = [c for c in world.sim.calls if c.method == "POST" and c.path == SECRETS]
    assert len(posts) == 1
    events = world.services().audit.events(run_id=outcome.run.id)
    create = next(e for e in events if e.step == "create")
    assert create.detail is not None
    assert create.detail["reconciled"] is True
    assert create.secret_id == outcome.run.new_secret_id


def test_delete_applied_but_unanswered_counts_as_done(seeded: World) -> None:
    """A DELETE that took effect but whose answer was lost is retried; its 404 means done."""
    world = seeded
    world.sim.inject(Fault(**CALLS["revoke"], action="reset_after_apply"))
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.SUCCEEDED
    deletes = [c for c in world.sim.calls if c.method == "DELETE"]
    assert [c.status for c in deletes] == [None, 404]
    assert_rotated(world, outcome)


def test_persistent_post_failure_rolls_back(seeded: World) -> None:
    """A POST that fails every time ends rolled back, with nothing left behind."""
    world = seeded.configure(vonage={"max_retries": 1})
    world.sim.inject(Fault(**CALLS["create"], action="status", status=503, times=None))
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.ROLLED_BACK
    assert_old_secret_kept(world)
    assert violations(world, SUB, world.services().audit) == []


def test_persistent_verification_failure_rolls_back(seeded: World) -> None:
    """A balance check that errors until verify_timeout rolls the new secret back."""
    world = seeded.configure(rotation={"verify_timeout": "1s"}, vonage={"max_retries": 1})
    world.sim.inject(Fault(**CALLS["balance"], action="status", status=503, times=None))
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.ROLLED_BACK
    assert_old_secret_kept(world)
    assert violations(world, SUB, world.services().audit) == []


def test_verification_backs_off_until_its_timeout_on_the_injected_clock(seeded: World) -> None:
    """Verification polls every 0.25 s, then slower, on the injected clock; stops at the timeout."""
    world = seeded.configure(rotation={"verify_timeout": "10s"}, vonage={"max_retries": 0})
    world.sim.inject(Fault(**CALLS["balance"], action="status", status=503, times=None))
    services = world.services()
    slept: list[float] = []
    rotator = rotator_with(services, sleep=slept.append, clock=lambda: sum(slept))
    outcome = rotate(world, SUB, rotator)
    assert outcome.run.status == RunStatus.ROLLED_BACK
    assert slept[:8] == [0.25] * 8
    assert slept[8:] == sorted(slept[8:])
    assert 9.0 < sum(slept) <= 10.0


@pytest.mark.parametrize("fault", ["malformed_json", "huge_body", "503_forever"])
def test_failure_after_promotion_is_finished_by_the_next_run(seeded: World, fault: str) -> None:
    """If revoking fails after promotion, the new secret stays current, the old one keeps its
    value in Vault, and the next run of the key finishes the revocation."""
    world = seeded.configure(vonage={"max_retries": 1})
    spec = (
        {"action": "status", "status": 503, "times": None}
        if fault == "503_forever"
        else {"action": fault}
    )
    injected = world.sim.inject(Fault(**CALLS["revoke"], **spec))
    with pytest.raises(RotatorError):
        rotate(world)
    run = only_run(world)
    assert run.status == RunStatus.RUNNING
    assert "revocation pending" in (run.error or "")
    record = world.vault_record(SUB)
    assert record is not None
    assert record["secret_id"] == run.new_secret_id
    assert current_works(world, SUB)
    problems = violations(world, SUB)
    assert problems == [], "no audit check here: the run is left running on purpose"
    world.sim.clear_faults()
    assert world.sim.fault_hits(injected) >= 1
    outcome = rotate(world)
    assert [r.id for r in outcome.resumed] == [run.id]
    assert outcome.resumed[0].status == RunStatus.SUCCEEDED
    assert violations(world, SUB, world.services().audit) == []


def test_several_seconds_of_propagation_are_ridden_out(seeded: World) -> None:
    """A new secret that authenticates only after 3 seconds is verified, not rolled back."""
    world = seeded
    world.sim.propagation_delay = 3.0
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.SUCCEEDED
    verify = next(
        e for e in world.services().audit.events(run_id=outcome.run.id) if e.step == "verify"
    )
    assert verify.detail is not None
    assert verify.detail["attempts"] > 1
    assert_rotated(world, outcome)


def test_rate_limited_vonage_is_ridden_out(seeded: World) -> None:
    """With Vonage answering 429 to bursts, every call is retried after Retry-After."""
    world = seeded
    world.sim.rate_limit = 2
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert any(c.status == 429 for c in world.sim.calls)
    assert_rotated(world, outcome)


def test_primary_rotated_under_a_subaccount_run_is_picked_up(seeded: World) -> None:
    """A subaccount run whose primary secret is rotated away mid-run re-reads it from Vault."""
    world = seeded
    services = world.services()
    primary_rotated: list[Outcome] = []

    def sleep_and_rotate_primary(_seconds: float) -> None:
        # Called while the subaccount's POST is retried: the primary's rotation (another
        # rotator, as in the daemon) revokes the secret the subaccount run read at its start.
        if not primary_rotated:
            primary_rotated.append(rotate(world, PRIMARY))

    rotator = rotator_with(services, sleep=sleep_and_rotate_primary)
    world.sim.inject(Fault(**CALLS["create"], action="status", status=503))
    outcome = rotate(world, SUB, rotator)
    assert primary_rotated[0].run.status == RunStatus.SUCCEEDED
    assert not seeded_works(world, PRIMARY)
    assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.error
    assert_rotated(world, outcome)
    assert violations(world, PRIMARY, services.audit) == []


# -- revocation: Vonage's 204 settles a DELETE; anything else is confirmed by listing ------------


def secret_calls(world: World, since: int = 0) -> list[tuple[str, str]]:
    """(method, path) of the simulator's calls from ``since`` on, secrets and balance only."""
    return [(c.method, c.path) for c in world.sim.calls[since:] if c.path != "/sms/json"]


def test_an_ambiguous_delete_is_confirmed_by_listing(seeded: World) -> None:
    """A DELETE whose answer was lost (applied, then reset) is confirmed by a listing."""
    world = seeded
    world.sim.inject(Fault(**CALLS["revoke"], action="reset_after_apply"))
    outcome = rotate(world)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert secret_calls(world)[-1] == ("GET", SECRETS)
    assert_rotated(world, outcome)


def test_a_spoofed_delete_success_is_not_trusted(seeded: World) -> None:
    """A DELETE answered 200 instead of Vonage's 204 (nothing revoked) is checked by listing:
    the surviving old secret keeps the run open, its value kept in Vault."""
    world = seeded
    old = world.sim.secret_ids(SUB)[0]
    world.sim.inject(Fault(**CALLS["revoke"], action="body", status=200, body="{}"))
    with pytest.raises(RotatorError, match="survived revocation"):
        rotate(world)
    assert old in world.sim.secret_ids(SUB)
    assert secret_calls(world)[-1] == ("GET", SECRETS)
    assert only_run(world).status == RunStatus.RUNNING
    state = world.vault_record(SUB, "rotator-state") or {}
    assert (state.get("previous") or {}).get("secret_id") == old
    assert violations(world, SUB) == []


def test_emergency_revokes_a_secret_swapped_in_after_inspect(seeded: World) -> None:
    """An emergency lists again before revoking: a secret someone swapped in for the old one
    since inspect (revoke one, add one: within Vonage's two-secret cap) is revoked too."""
    world = seeded
    services = world.services()
    old = world.sim.secret_ids(SUB)[0]
    added: list[str] = []

    def swap(point: str) -> None:
        if point == "before:revoke" and not added:
            services.vonage.revoke_secret(services.vault.credentials(PRIMARY), SUB, old)
            added.append(world.sim.add_secret(SUB, "Attacker1Secret", propagated=True))

    rotator = Rotator(
        services.config,
        vault=services.vault,
        vonage=services.vonage,
        audit=services.audit,
        leases=services.leases,
        boundary=swap,
    )
    outcome = rotator.rotate(SUB, actor="fault-test", reason="leak", emergency=True)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert world.sim.secret_ids(SUB) == [outcome.run.new_secret_id]
    assert len(added) == 1
    assert not world.sim.authenticates(SUB, "Attacker1Secret")
    assert violations(world, SUB, services.audit) == []


def test_an_application_reading_vault_always_gets_a_working_secret(seeded: World) -> None:
    """An application that reads Vault's current record between any two steps of a rotation
    (revocation settled by Vonage's 204, no Vault re-read in revoke) always authenticates."""
    world = seeded
    services = world.services()
    reads: list[bool] = []

    def application_reads(point: str) -> None:
        record = world.vault_record(SUB)
        assert record is not None
        reads.append(world.sim.authenticates(SUB, record["api_secret"]))

    rotator = Rotator(
        services.config,
        vault=services.vault,
        vonage=services.vonage,
        audit=services.audit,
        leases=services.leases,
        boundary=application_reads,
    )
    outcome = rotator.rotate(SUB, actor="fault-test", reason="in use")
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert len(reads) >= 16
    assert all(reads)
    assert_rotated(world, outcome)
