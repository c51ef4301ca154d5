"""The `rotator` command line as scripts use it: JSON shapes and exit codes (0 success, 1 failed or
rolled back, 2 bad configuration, 3 a backend unavailable, 75 the key is locked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
import yaml

from rotator import db
from rotator.audit import RunStatus
from rotator.lease import Leases
from tests.conftest import PRIMARY, SUBACCOUNTS, World

SUB = "sub00001"
RUN_FIELDS = {
    "run_id", "api_key", "trigger", "reason", "actor", "status", "emergency", "old_secret_id",
    "new_secret_id", "started_at", "finished_at", "revoke_after", "error",
}  # fmt: skip
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def seeded(world: World) -> World:
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    return world


def test_rotate_json_describes_the_run_and_exits_0(world: World, run_cli: Any) -> None:
    """A successful `rotate --json` prints the run (and what it resumed) and exits 0."""
    seeded(world)
    old_id = world.sim.secret_ids(SUB)[0]
    done = run_cli("rotate", SUB, "--json", "--reason", "quarterly", "--actor", "alice")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert set(out) == RUN_FIELDS | {"resumed"}
    assert out["status"] == "succeeded"
    assert (out["api_key"], out["trigger"], out["reason"], out["actor"]) == (
        SUB, "manual", "quarterly", "alice",
    )  # fmt: skip
    assert out["old_secret_id"] == old_id
    assert [out["new_secret_id"]] == world.sim.secret_ids(SUB)
    assert out["error"] is None
    assert out["resumed"] == []
    assert out["finished_at"] >= out["started_at"]


def test_rolled_back_rotation_exits_1(world: World, run_cli: Any) -> None:
    """A rotation whose new secret never authenticates is rolled back: exit 1, the error says so."""
    seeded(world)
    world.configure(rotation={"verify_timeout": "0.5s"})
    world.sim.propagation_delay = 3600
    done = run_cli("rotate", SUB, "--json")
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["status"] == "rolled_back"
    assert "VerificationFailedError" in out["error"]


def test_failed_rotation_exits_1_and_says_what_to_do(world: World, run_cli: Any) -> None:
    """An unidentifiable key fails without change: exit 1, the text output names the remedy."""
    seeded(world)
    world.sim.add_secret(PRIMARY, "Second2Secret")
    world.seed_primary(with_id=False)
    done = run_cli("rotate", PRIMARY)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED")
    assert "rotator adopt" in done.stdout


def test_bad_config_exits_2_naming_the_field(world: World, run_cli: Any) -> None:
    """An invalid config exits 2 before doing anything, naming the offending key."""
    world.configure(rotation={"grace": "1h"})
    done = run_cli("rotate", SUB)
    assert done.returncode == 2
    assert "rotation.grace: unknown key" in done.stderr
    assert done.stdout == ""


def test_unreachable_database_exits_3(world: World, run_cli: Any) -> None:
    """A database that cannot be opened is 'unavailable': exit 3, with the cause."""
    world.configure(database={"url": f"sqlite:///{world.tmp_path}/no/such/dir/rotator.db"})
    done = run_cli("rotate", SUB)
    assert done.returncode == 3
    assert "database directory" in done.stderr


def test_locked_key_exits_75(world: World, run_cli: Any) -> None:
    """While another live process holds the key's lease, `rotate` exits 75 (EX_TEMPFAIL)."""
    seeded(world)
    engine = db.make_engine(world.database_url)
    db.upgrade(engine)
    try:
        Leases(engine, ttl=timedelta(minutes=5)).acquire(SUB)
        done = run_cli("rotate", SUB, "--json")
    finally:
        engine.dispose()
    assert done.returncode == 75
    assert "is being rotated by" in done.stderr
    assert world.sim.secret_ids(SUB) == [world.sim.secret_ids(SUB)[0]], "nothing touched"


def test_audit_json_lists_one_keys_runs_newest_first(world: World, run_cli: Any) -> None:
    """`audit --api-key K --json` prints one JSON run per line, only K's, newest first."""
    seeded(world)
    rotator = world.services().rotator
    first = rotator.rotate(SUB, actor="t").run
    rotator.rotate(PRIMARY, actor="t")
    second = rotator.rotate(SUB, actor="t").run
    done = run_cli("audit", "--api-key", SUB, "--json")
    assert done.returncode == 0
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["run_id"] for r in lines] == [second.id, first.id]
    assert all(set(r) == RUN_FIELDS for r in lines)
    assert {r["status"] for r in lines} == {str(RunStatus.SUCCEEDED)}


def test_audit_of_an_unmigrated_database_says_to_upgrade(world: World, run_cli: Any) -> None:
    """`audit` never migrates: on an empty database it says to run `rotator db upgrade`."""
    done = run_cli("audit", "--json")
    assert done.returncode == 3
    assert "rotator db upgrade" in done.stderr


def test_db_upgrade_creates_the_schema_and_is_idempotent(world: World, run_cli: Any) -> None:
    """`db upgrade` brings an empty database to the newest revision; again, it changes nothing."""
    first = run_cli("db", "upgrade")
    second = run_cli("db", "upgrade")
    head = db.head_revision()
    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout.strip() == second.stdout.strip() == f"database at revision {head}"
    engine = db.make_engine(world.database_url)
    try:
        assert db.current_revision(engine) == head
    finally:
        engine.dispose()


def test_config_file_given_by_environment(world: World, run_cli: Any) -> None:
    """Without --config, ROTATOR_CONFIG names the file (here: a broken one, so exit 2)."""
    broken = world.tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"vonage": {"primary_api_key": "bad key"}}))
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "db", "upgrade"],
        capture_output=True,
        text=True,
        env={**os.environ, "ROTATOR_CONFIG": str(broken)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "vonage.primary_api_key" in done.stderr
