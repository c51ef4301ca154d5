"""The daemon wires consumer events end to end: `rotator run --once` rotates, and the events it
announced reach a Standard Webhooks receiver before it exits."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.events.conftest import WHSEC, Receiver
from tests.secretscan import find, world_secret_values

SECRET_ENV = "ROTATOR_TEST_EVENTS_SECRET"


@pytest.fixture
def due_world(world: World, receiver: Receiver) -> World:
    world.seed_primary()
    world.configure(
        events={"endpoints": [{"url": receiver.url, "secret_env": SECRET_ENV}]},
        rotation={"schedule": {"interval": "1h", "jitter": "0s"}},
    )
    return world


def run_once(world: World) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, SECRET_ENV: WHSEC}
    argv = [sys.executable, "-m", "rotator", "--config", str(world.config_file()), "run", "--once"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_run_once_delivers_a_verified_rotated_event_per_key(
    due_world: World, receiver: Receiver
) -> None:
    """Every key rotated by the daemon is announced as secret.rotated, signed and verified."""
    done = run_once(due_world)
    assert done.returncode == 0, done.stderr[-2000:]
    rotated = {r["data"]["api_key"] for r in receiver.received if r["type"] == "secret.rotated"}
    assert rotated == {PRIMARY, *SUBACCOUNTS}
    assert receiver.rejected == 0


def test_daemon_events_carry_no_secret_value(due_world: World, receiver: Receiver) -> None:
    """No delivered body names a secret value Vault or Vonage holds."""
    done = run_once(due_world)
    assert done.returncode == 0, done.stderr[-2000:]
    bodies = repr(receiver.received)
    assert receiver.received
    assert find(world_secret_values(due_world), {"deliveries": bodies}) == []
