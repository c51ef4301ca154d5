"""Operators' tools: emergency rotation, plan, adopt, rotate --all, check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rotator.audit import RunStatus
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World
from tests.invariants import violations

SUB = "sub00001"


def wait_for(condition: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_emergency_revokes_an_unknown_extra_secret(world: World, run_cli: Any) -> None:
    """After an emergency rotation only the new secret exists, even one rotator never knew."""
    world.seed_primary(with_id=True)
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    attacker = world.sim.add_secret(SUB, "Attacker1Secret")
    world.configure(notify={"sms": {"from": "Rotator", "to": ["447700900001"]}})
    result = run_cli("rotate", SUB, "--emergency", "--reason", "leaked in a paste", "--json",
                     "--actor", "oncall@example.com")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["emergency"] is True
    assert run["trigger"] == "emergency"
    assert world.sim.secret_ids(SUB) == [run["new_secret_id"]]
    assert attacker not in world.sim.secret_ids(SUB)
    record = world.vault_record(SUB)
    assert record is not None
    assert record["secret_id"] == run["new_secret_id"]
    [sms] = world.sim.sms_outbox
    assert sms.to == "447700900001"
    assert "emergency" in sms.text
    assert SUB in sms.text
    services = world.services()
    assert services.audit.get_run(run["run_id"]).actor == "oncall@example.com"
    assert services.audit.get_run(run["run_id"]).reason == "leaked in a paste"
    assert violations(world, SUB, services.audit) == []


def test_emergency_requires_a_reason(world: World, run_cli: Any) -> None:
    """An emergency rotation without --reason is refused before anything happens."""
    world.seed_primary()
    result = run_cli("rotate", SUB, "--emergency")
    assert result.returncode == 2
    assert "--reason" in result.stderr
    assert world.sim.secret_ids(SUB) != [], "untouched"


def test_emergency_waits_for_a_rotation_in_progress(world: World, tmp_path: Path) -> None:
    """An emergency that finds the key mid-rotation waits for it; the runs never overlap."""
    world.seed_primary()
    config = str(world.config_file())
    marker = tmp_path / "paused"
    cli = [sys.executable, "-m", "rotator", "--config", config]
    first = subprocess.Popen(
        [*cli, "rotate", SUB, "--reason", "scheduled"],
        env={
            **os.environ,
            "ROTATOR_TEST_PAUSE_AT": "after:create",
            "ROTATOR_TEST_PAUSE_FILE": str(marker),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(marker.exists, what="the first rotation to pause")
        err_path = tmp_path / "emergency.err"
        with err_path.open("w") as err:
            emergency = subprocess.Popen(
                [*cli, "rotate", SUB, "--emergency", "--reason", "leak", "--wait", "60"],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            wait_for(lambda: "waiting up to" in err_path.read_text(), what="the wait notice")
            marker.unlink()  # let the first rotation reach its end
            assert first.wait(60) == 0
            assert emergency.wait(60) == 0, err_path.read_text()
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    services = world.services()
    runs = sorted(services.audit.runs(api_key=SUB), key=lambda r: r.started_at)
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert runs[0].finished_at is not None
    assert runs[0].finished_at <= runs[1].started_at, "the runs overlapped"
    assert runs[1].emergency
    assert world.sim.secret_ids(SUB) == [runs[1].new_secret_id]
    assert violations(world, SUB, services.audit) == []


def test_plan_changes_nothing(world: World, run_cli: Any) -> None:
    """`rotator plan` only reads: the simulator saw no POST or DELETE, Vault is unchanged."""
    world.seed_primary(with_id=True)
    world.sim.add_secret(SUB, "Second1Secret")
    before = {key: world.sim.secret_ids(key) for key in (PRIMARY, *SUBACCOUNTS)}
    calls_before = len(world.sim.calls)
    result = run_cli("plan", "--json")
    assert result.returncode == 0, result.stderr
    methods = {c.method for c in world.sim.calls[calls_before:]}
    assert methods == {"GET"}
    assert {key: world.sim.secret_ids(key) for key in before} == before
    assert world.vault_record(SUB) is None
    views = {v["api_key"]: v for v in json.loads(result.stdout)}
    assert list(views) == [*sorted(SUBACCOUNTS), PRIMARY], "subaccounts first, primary last"
    assert views[SUB]["plan"]["blocked"], "two unknown secrets: rotation would stop"
    assert "create it on Vonage" in views[PRIMARY]["plan"]["actions"]


def test_dry_run_describes_the_rotation_without_doing_it(world: World, run_cli: Any) -> None:
    """`rotate --dry-run` lists the steps it would take and leaves the key as it was."""
    world.seed_primary(with_id=True)
    old = world.sim.secret_ids(PRIMARY)
    result = run_cli("rotate", PRIMARY, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "promote it to current in Vault" in result.stdout
    assert f"revoke {old[0]}" in result.stdout
    assert world.sim.secret_ids(PRIMARY) == old


def test_adopt_resolves_an_unidentifiable_key(world: World, run_cli: Any) -> None:
    """Two secrets and no record: after `adopt` the next rotation keeps the adopted one going."""
    world.seed_primary(with_id=True)
    original = world.sim.secret_ids(SUB)[0]
    stray = world.sim.add_secret(SUB, "Stray1Secret0")
    blocked = run_cli("rotate", SUB)
    assert blocked.returncode == 1
    assert "rotator adopt" in blocked.stderr + blocked.stdout
    adopted = run_cli("adopt", SUB, "--secret-id", original, "--reason", "checked the app config")
    assert adopted.returncode == 0, adopted.stderr
    rotated = run_cli("rotate", SUB, "--json")
    assert rotated.returncode == 0, rotated.stderr
    run = json.loads(rotated.stdout)
    assert run["old_secret_id"] == original
    assert stray not in world.sim.secret_ids(SUB)
    events = world.services().audit.events(api_key=SUB)
    adopt_event = next(e for e in events if e.step == "adopt")
    assert adopt_event.secret_id == original
    assert adopt_event.detail is not None
    assert adopt_event.detail["reason"] == "checked the app config"


def test_adopt_with_a_value_stores_it_as_current(world: World, run_cli: Any) -> None:
    """`adopt --secret-env` puts the value applications use into Vault as current."""
    world.seed_primary(with_id=True)
    original = world.sim.secret_ids(SUB)[0]
    result = run_cli("adopt", SUB, "--secret-id", original, "--secret-env", "SUB_SECRET",
                     env={"SUB_SECRET": SUBACCOUNTS[SUB]})  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = world.vault_record(SUB)
    assert record == {**record, "secret_id": original, "api_secret": SUBACCOUNTS[SUB]}


def test_adopt_refuses_an_id_vonage_does_not_have(world: World, run_cli: Any) -> None:
    """Adopting a secret id the key does not have is an error naming the ids it does have."""
    world.seed_primary(with_id=True)
    result = run_cli("adopt", SUB, "--secret-id", "no-such-id")
    assert result.returncode == 1
    assert world.sim.secret_ids(SUB)[0] in result.stderr


def test_rotate_all_does_subaccounts_first_and_the_primary_last(world: World, run_cli: Any) -> None:
    """`rotate --all` rotates every active subaccount, then the primary."""
    world.seed_primary()
    result = run_cli("rotate", "--all", "--json", "--reason", "quarterly")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [r["api_key"] for r in runs] == [*sorted(SUBACCOUNTS), PRIMARY]
    assert all(r["status"] == "succeeded" for r in runs)
    services = world.services()
    for key in (PRIMARY, *SUBACCOUNTS):
        assert violations(world, key, services.audit) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_status_lists_every_key(world: World, run_cli: Any) -> None:
    """`rotator status --json` has a row per key with its current secret and last run."""
    world.seed_primary()
    assert run_cli("rotate", SUB).returncode == 0
    result = run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["api_key"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {PRIMARY, *SUBACCOUNTS}
    assert rows[SUB]["last_run"]["status"] == "succeeded"
    assert rows[SUB]["current_secret_id"] == world.sim.secret_ids(SUB)[0]
    assert rows[SUB]["secret_count"] == 1
    table = run_cli("status")
    assert table.returncode == 0
    assert SUB in table.stdout
    assert PRIMARY_SECRET not in table.stdout
