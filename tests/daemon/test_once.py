"""`rotator run --once` under Vonage's rate limit: the simulator allows 10 calls a second while
rotator is configured for 40, so 429s really happen; the shared limiter must absorb them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import pytest

from rotator.audit import AuditLog, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.simulator import Fault
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import add_subaccounts, open_audit, own_world

pytestmark = pytest.mark.postgres


@dataclass
class Session:
    world: World
    audit: AuditLog
    keys: list[str]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    counts_after_first: dict[str, int]
    throttled: int


def run_once(world: World) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(world.config_file()), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    with own_world(
        openbao,
        vault_admin,
        tmp_path_factory.mktemp("once"),
        vonage={"max_calls_per_second": 40},
        rotation={"schedule": {"interval": "1h", "jitter": "30m"}},
    ) as world:
        keys = [PRIMARY, *SUBACCOUNTS, *add_subaccounts(world.sim, 2)]
        world.seed_primary()
        audit = open_audit(world)
        try:
            world.sim.rate_limit = 10
            # Also a 429 on creating a secret: a POST that Vonage refused unprocessed.
            world.sim.inject(
                Fault(action="status", status=429, retry_after=1, method="POST", path="*/secrets")
            )
            first = run_once(world)
            counts = {k: len(audit.runs(api_key=k)) for k in keys}
            throttled = sum(1 for call in world.sim.calls if call.status == 429)
            second = run_once(world)
            yield Session(world, audit, keys, first, second, counts, throttled)
        finally:
            audit.engine.dispose()


def test_once_rotates_every_due_key_and_exits_0(session: Session) -> None:
    """Never-rotated keys are due at once (no jitter wait with --once); each is rotated once."""
    assert session.first.returncode == 0, session.first.stdout[-3000:]
    assert session.counts_after_first == dict.fromkeys(session.keys, 1)


def test_vonage_did_answer_429(session: Session) -> None:
    """The simulator's limit was hit (and a POST refused): the next test means something."""
    assert session.throttled > 0


def test_no_rotation_fails_because_of_429(session: Session) -> None:
    """Every run succeeded despite the 429s: the shared limiter backed off and retried."""
    statuses = {r.status for r in session.audit.runs()}
    assert statuses == {RunStatus.SUCCEEDED}


def test_second_pass_finds_nothing_due(session: Session) -> None:
    """Right after, nothing is due: --once exits 0 without rotating anything again."""
    assert session.second.returncode == 0
    assert {k: len(session.audit.runs(api_key=k)) for k in session.keys} == (
        session.counts_after_first
    )
