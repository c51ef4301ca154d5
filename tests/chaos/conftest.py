"""Fixtures for the chaos test: a harness with its own OpenBao, PostgreSQL and simulator.

Nothing here uses the suite's shared servers: the harness seals and kills its OpenBao and stops
its PostgreSQL, which must not disturb tests running alongside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosHarness

CI_SEED = 20261123
CI_KEYS = 3  # the primary and two subaccounts
CI_SINGLES = 12  # one kind per run for the first 12: every kind once, nothing masking it
CI_RUNS = 16  # then random mixes of up to three kinds
CI_MAX_PROPAGATION = 3.0


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosHarness]:
    """A started harness sized for CI; every server and rotator it started is stopped after."""
    with ChaosHarness(
        tmp_path / "chaos",
        keys=CI_KEYS,
        seed=CI_SEED,
        max_propagation=CI_MAX_PROPAGATION,
        singles=CI_SINGLES,
    ) as harness:
        yield harness
