"""The process hardening a daemon applies at start: no core dumps, not dumpable (Linux)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# /proc/self/status shows no Dumpable line on every kernel: ask prctl(PR_GET_DUMPABLE) itself.
PROBE = """
import ctypes, resource
from rotator.process import harden_process
harden_process()
dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)
print(resource.getrlimit(resource.RLIMIT_CORE), dumpable)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_harden_process_turns_core_dumps_off_and_the_process_undumpable() -> None:
    """After harden_process a fresh interpreter has RLIMIT_CORE (0, 0) and is not dumpable."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split(" ", 2)[:2] == ["(0,", "0)"]
    assert result.stdout.split()[2] == "0"


def test_the_systemd_unit_forbids_core_dumps() -> None:
    """deploy/systemd/rotator.service sets LimitCORE=0."""
    unit = Path(__file__).resolve().parent.parent / "deploy/systemd/rotator.service"
    assert "LimitCORE=0" in unit.read_text().splitlines()
