"""API_KEY arguments are parsed before use (exit 2), and `plan` fails loudly (exit 1) when it
could not inspect a key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rotator.devtools.simulator import Fault
from tests.conftest import World

BAD = "zz/../subnew01"


@pytest.mark.parametrize(
    "args",
    [
        ("rotate", BAD, "--reason", "x"),
        ("rotate", BAD, "--dry-run"),
        ("plan", BAD),
        ("adopt", BAD, "--secret-id", "ad6dc56f-07b5-46e1-a527-85530e625800"),
        ("lease", "break", BAD, "--reason", "x"),
        ("rollback", BAD, "--reason", "x"),
        ("pause", BAD, "--until", "2099-01-01T00:00:00Z", "--reason", "x"),
        ("resume", BAD),
        ("audit", "--api-key", BAD),
    ],
    ids=[
        "rotate",
        "dry-run",
        "plan",
        "adopt",
        "lease-break",
        "rollback",
        "pause",
        "resume",
        "audit",
    ],
)
def test_a_hostile_api_key_argument_exits_2_before_any_call(
    world: World, run_cli: Callable[..., Any], args: tuple[str, ...]
) -> None:
    """`zz/../subnew01` is refused with exit 2; Vonage never sees it."""
    world.seed_primary()
    world.sim.reset_calls()
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "argument API_KEY" in result.stderr
    assert world.sim.calls == []


def test_plan_exits_1_when_a_key_could_not_be_inspected(
    world: World, run_cli: Callable[..., Any]
) -> None:
    """A key whose secrets cannot be listed makes `plan` exit 1, after printing the others."""
    world.seed_primary()
    world.configure(vonage={"max_retries": 1})  # the default 5 only add 0.5+1+2+4 s of backoff
    world.sim.inject(Fault(action="status", method="GET", path="/accounts/sub00001/secrets",
                           status=500, times=None))  # fmt: skip
    result = run_cli("plan")
    assert result.returncode == 1, result.stderr
    assert "cannot inspect" in result.stdout
    assert "sub00002" in result.stdout
