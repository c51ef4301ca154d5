"""The rotation protocol end to end: simulator, real OpenBao, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from rotator.audit import RunStatus
from rotator.errors import NoWorkingSecretError
from rotator.lease import Leases
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World
from tests.invariants import violations

SUB = "sub00001"
STEPS = ["run.start", "inspect", "make_room", "generate", "stage", "create", "verify", "promote",
         "revoke", "run.end"]  # fmt: skip


def rotate(world: World, api_key: str, **kwargs: object):  # type: ignore[no-untyped-def]
    services = world.services()
    return services.rotator.rotate(api_key, actor="tester", reason="test", **kwargs), services


def test_step_boundary_hears_before_and_after_every_step(world: World) -> None:
    """The injected step boundary is called around each step of the table, in order, and
    inside create once Vonage created the secret and once Vault recorded its id (the crash
    tests kill there: the run row learns the id only with the step's event)."""
    world.seed_primary()
    heard: list[str] = []
    services = world.services(boundary=heard.append)
    services.rotator.rotate(SUB, actor="tester", reason="test")
    inside = {"create": ["posted", "stored"]}
    assert heard == [
        f"{when}:{step}"
        for step in STEPS[1:-1]
        for when in ("before", *inside.get(step, []), "after")
    ]


def test_a_finished_run_leaves_the_key_free_and_its_end_recorded(world: World) -> None:
    """The run's end releases the key's lease in the transaction that records it (issue 12):
    after the rotation nobody holds the key, the lease names no run, and another process takes
    it at once (token one higher)."""
    world.seed_primary()
    outcome, services = rotate(world, SUB)
    assert outcome.run.status == RunStatus.SUCCEEDED
    holder = services.leases.holder(SUB)
    assert holder is not None
    assert (holder.active, holder.run_id) == (False, None)
    other = Leases(services.engine, ttl=timedelta(minutes=5), owner="elsewhere:1:x")
    assert other.acquire(SUB).token == holder.token + 1


def test_primary_rotation_replaces_the_secret_everywhere(world: World) -> None:
    """Rotating the primary leaves one new secret on Vonage, current in Vault, the old one gone."""
    world.seed_primary()
    old_id = world.sim.secret_ids(PRIMARY)[0]
    outcome, services = rotate(world, PRIMARY)
    assert outcome.run.status == RunStatus.SUCCEEDED
    record = world.vault_record(PRIMARY)
    assert record is not None
    assert world.sim.secret_ids(PRIMARY) == [record["secret_id"]]
    assert record["secret_id"] != old_id
    assert record["api_secret"] != PRIMARY_SECRET
    assert world.current_authenticates(PRIMARY)
    assert not world.seeded_authenticates(PRIMARY)
    assert violations(world, PRIMARY, services.audit) == []


def test_subaccount_rotation_needs_no_vault_entry_first(world: World) -> None:
    """A subaccount never seen before is rotated with the primary's credentials."""
    world.seed_primary()
    outcome, services = rotate(world, SUB)
    assert outcome.run.status == RunStatus.SUCCEEDED
    record = world.vault_record(SUB)
    assert record is not None
    assert world.sim.secret_ids(SUB) == [record["secret_id"]]
    assert world.current_authenticates(SUB)
    assert not world.seeded_authenticates(SUB)
    assert world.seeded_authenticates(PRIMARY), "the primary is untouched"
    assert violations(world, SUB, services.audit) == []


def test_audit_log_records_every_step_in_order(world: World) -> None:
    """The audit events of a run name each protocol step once, in order, all ok."""
    world.seed_primary()
    outcome, services = rotate(world, SUB)
    events = services.audit.events(run_id=outcome.run.id)
    assert [e.step for e in events if e.step != "run.update"] == STEPS
    assert all(e.outcome in {"ok", "skipped", "succeeded"} for e in events)
    create = next(e for e in events if e.step == "create")
    assert create.request_id, "Vonage's X-Request-Id is kept"
    assert create.secret_id == outcome.run.new_secret_id
    stage = next(e for e in events if e.step == "stage")
    assert stage.vault_version is not None


def test_run_row_summarises_the_rotation(world: World) -> None:
    """The run row holds key, trigger, actor, reason, status, old and new ids, timings."""
    world.seed_primary()
    old_id = world.sim.secret_ids(SUB)[0]
    outcome, _ = rotate(world, SUB)
    run = outcome.run
    assert (run.api_key, run.trigger, run.actor, run.reason) == (SUB, "manual", "tester", "test")
    assert run.old_secret_id == old_id
    assert run.new_secret_id == world.sim.secret_ids(SUB)[0]
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at


def test_two_secrets_with_a_known_previous_revokes_the_previous(world: World) -> None:
    """Once the previous secret's grace period is over, making room revokes it."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(rotation={"grace_period": "1s"})
    first, _ = rotate(world, SUB)
    assert first.run.status == RunStatus.AWAITING_REVOKE
    assert len(world.sim.secret_ids(SUB)) == 2
    current = world.vault_record(SUB)
    assert current is not None
    second, services = rotate(world, SUB, grace_wait=timedelta(seconds=30))
    assert second.run.status == RunStatus.AWAITING_REVOKE
    make_room = next(
        e for e in services.audit.events(run_id=second.run.id) if e.step == "make_room"
    )
    assert make_room.detail is not None
    assert make_room.detail["revoked"] == [first.run.old_secret_id]
    assert make_room.detail["reason"] == "revoking the previous secret"
    assert first.run.revoke_after is not None
    assert make_room.started_at >= first.run.revoke_after
    assert current["secret_id"] in world.sim.secret_ids(SUB)


def test_two_secrets_with_an_orphan_revokes_the_orphan(world: World) -> None:
    """An extra secret nobody recorded is revoked to make room; the current one is kept (a key
    Vault knows finds it when Vonage refuses the new secret, then lists and makes room)."""
    world.seed_primary(with_id=True)
    orphan = world.sim.add_secret(PRIMARY, "Orphan1Secret")
    outcome, services = rotate(world, PRIMARY)
    assert outcome.run.status == RunStatus.SUCCEEDED
    events = services.audit.events(run_id=outcome.run.id)
    make_room = [e for e in events if e.step == "make_room"][-1]
    assert make_room.detail is not None
    assert make_room.detail["revoked"] == [orphan]
    assert make_room.detail["reason"] == "revoking an orphan secret"
    assert violations(world, PRIMARY, services.audit) == []


def test_two_unidentifiable_secrets_stop_with_advice_and_change_nothing(world: World) -> None:
    """Two secrets and a record without an id: the run fails, pointing at `rotator adopt`."""
    world.seed_primary(with_id=False)
    world.sim.add_secret(PRIMARY, "Second1Secret")
    before = world.sim.secret_ids(PRIMARY)
    outcome, _ = rotate(world, PRIMARY)
    assert outcome.run.status == RunStatus.FAILED
    assert outcome.run.error is not None
    assert "rotator adopt" in outcome.run.error
    assert world.sim.secret_ids(PRIMARY) == before
    assert world.vault_record(PRIMARY, "rotator-state") is None, "nothing staged"


def test_unidentifiable_subaccount_with_revoke_older_switch_rotates(world: World) -> None:
    """With rotation.on_unidentified: revoke_older the older unknown secret makes room."""
    world.seed_primary()
    older = world.sim.secret_ids(SUB)[0]
    world.sim.add_secret(SUB, "Second1Secret")
    world.configure(rotation={"on_unidentified": "revoke_older"})
    outcome, _ = rotate(world, SUB)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert older not in world.sim.secret_ids(SUB)
    assert world.sim.secret_ids(SUB) == [outcome.run.new_secret_id]


def test_record_without_id_and_one_secret_is_identified(world: World) -> None:
    """The primary's first secret may be seeded without its id: one secret on Vonage is it."""
    world.seed_primary(with_id=False)
    outcome, _ = rotate(world, PRIMARY)
    assert outcome.run.status == RunStatus.SUCCEEDED
    make_room = outcome.run
    assert make_room.old_secret_id is not None


def test_verification_failure_rolls_back_and_keeps_the_old_secret(world: World) -> None:
    """A new secret that never authenticates is revoked; the old one stays current and works."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(rotation={"verify_timeout": "1s"})
    world.sim.propagation_delay = 3600
    outcome, services = rotate(world, SUB)
    assert outcome.run.status == RunStatus.ROLLED_BACK
    assert "did not authenticate" in (outcome.run.error or "")
    record = world.vault_record(SUB)
    assert record is not None
    assert record["api_secret"] == SUBACCOUNTS[SUB]
    assert world.sim.secret_ids(SUB) == [record["secret_id"]]
    assert world.seeded_authenticates(SUB)
    state = world.vault_record(SUB, "rotator-state") or {}
    assert state.get("pending") is None
    assert violations(world, SUB, services.audit) == []


def test_propagation_delay_is_ridden_out(world: World) -> None:
    """A new secret that needs a second or two to authenticate is verified, not rolled back."""
    world.seed_primary()
    world.sim.propagation_delay = 1.5
    outcome, services = rotate(world, SUB)
    assert outcome.run.status == RunStatus.SUCCEEDED
    verify = next(e for e in services.audit.events(run_id=outcome.run.id) if e.step == "verify")
    assert verify.detail is not None
    assert verify.detail["attempts"] > 1


def test_missing_primary_record_is_a_clear_error(world: World) -> None:
    """Without the primary's secret in Vault nothing can be managed; the failed run says where."""
    outcome, _ = rotate(world, SUB)
    assert outcome.run.status == RunStatus.FAILED
    assert f"secret/{world.prefix}/vonage/{PRIMARY}" in (outcome.run.error or "")
    assert NoWorkingSecretError.__name__ in (outcome.run.error or "")


def test_unknown_key_fails_without_touching_anything(world: World) -> None:
    """A key that is not the primary's subaccount fails with Vonage's 404, recorded."""
    world.seed_primary()
    outcome, _ = rotate(world, "nosuchkey")
    assert outcome.run.status == RunStatus.FAILED
    assert "404" in (outcome.run.error or "")


def test_rotating_twice_keeps_one_secret(world: World) -> None:
    """Two rotations in a row each replace the secret; never more than one remains."""
    world.seed_primary()
    rotate(world, PRIMARY)
    outcome, services = rotate(world, PRIMARY)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert len(world.sim.secret_ids(PRIMARY)) == 1
    assert violations(world, PRIMARY, services.audit) == []


def test_grace_period_keeps_the_old_secret_until_revocation_completes(world: World) -> None:
    """With a grace period the old secret stays usable until the deferred revocation runs."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(rotation={"grace_period": "1h"})
    outcome, services = rotate(world, SUB)
    assert outcome.run.status == RunStatus.AWAITING_REVOKE
    assert world.seeded_authenticates(SUB)
    state = world.vault_record(SUB, "rotator-state")
    assert state is not None
    assert state["previous"]["secret"] == SUBACCOUNTS[SUB]
    done = services.rotator.complete_revocation(outcome.run)
    assert done.status == RunStatus.SUCCEEDED
    assert not world.seeded_authenticates(SUB)
    assert violations(world, SUB, services.audit) == []


def test_a_new_secret_left_as_the_only_one_is_promoted_not_revoked(
    world: World, tmp_path: Path
) -> None:
    """If the old secret vanishes mid-run and verification fails, the new one becomes current."""
    world.seed_primary()
    old_id = world.sim.secret_ids(SUB)[0]
    world.seed_vault(SUB, SUBACCOUNTS[SUB], old_id)
    world.configure(rotation={"verify_timeout": "1s"})
    world.sim.propagation_delay = 3600
    marker = tmp_path / "paused"
    rotate_cli = subprocess.Popen(
        [sys.executable, "-m", "rotator", "--config", str(world.config_file()), "rotate", SUB],
        env={
            **os.environ,
            "ROTATOR_TEST_PAUSE_AT": "after:create",
            "ROTATOR_TEST_PAUSE_FILE": str(marker),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, "the rotation never reached after:create"
            time.sleep(0.05)
        with httpx.Client(auth=(PRIMARY, PRIMARY_SECRET)) as client:  # someone revokes by hand
            gone = client.delete(f"{world.sim.api_url}/accounts/{SUB}/secrets/{old_id}")
        assert gone.status_code == 204
        marker.unlink()
        assert rotate_cli.wait(60) == 0
    finally:
        if rotate_cli.poll() is None:
            rotate_cli.kill()
    [run] = world.services().audit.runs(api_key=SUB)
    assert run.status == RunStatus.SUCCEEDED
    assert "only one, so it was promoted" in (run.error or "")
    record = world.vault_record(SUB)
    assert record is not None
    assert world.sim.secret_ids(SUB) == [record["secret_id"]] == [run.new_secret_id]


def test_an_adoption_survives_a_rolled_back_rotation(world: World) -> None:
    """A run that rolls back keeps the operator's adoption, so the key stays identifiable."""
    from rotator.adoption import adopt

    world.seed_primary()
    original = world.sim.secret_ids(SUB)[0]
    world.sim.add_secret(SUB, "Stray1Secret0", propagated=True)
    services = world.services()
    adopt(services, SUB, original, actor="tester", reason="test")
    world.configure(rotation={"verify_timeout": "1s"})
    world.sim.propagation_delay = 3600
    outcome, _ = rotate(world, SUB)
    assert outcome.run.status == RunStatus.ROLLED_BACK
    state = world.vault_record(SUB, "rotator-state")
    assert state is not None
    assert state["adopted_id"] == original
    assert world.sim.secret_ids(SUB) == [original]
