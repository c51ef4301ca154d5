"""The chaos run of CI: rotations under every kind of injected fault keep every promise."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import CI_RUNS
from tests.chaos.harness import ChaosHarness
from tests.chaos.invariants import key_violations
from tests.chaos.plan import KINDS


@pytest.mark.slow
def test_chaos_runs_keep_every_promise(chaos: ChaosHarness) -> None:
    """Randomised faults, kills and recoveries leave no invariant broken, and each kind of fault
    really happened (a harness that silently stopped injecting would fail here)."""
    stats = chaos.run(CI_RUNS)

    table = stats.table()
    assert stats.runs == CI_RUNS, table
    assert stats.violations == [], table
    never = [kind for kind in KINDS if stats.injected[kind] == 0]
    assert never == [], f"fault kinds never injected: {never}\n{table}"


def test_check_reports_a_secret_vault_does_not_hold(chaos: ChaosHarness) -> None:
    """The harness's check is live: a secret added on Vonage behind rotator's back is reported."""
    key = chaos.keys[-1]
    assert key_violations(chaos.sim, chaos.vault, key) == []

    added = chaos.sim.add_secret(key, "Unknown9Secret", propagated=True)

    assert key_violations(chaos.sim, chaos.vault, key) == [
        f"{key}: secret {added} on Vonage has no value in Vault (lost)"
    ]
