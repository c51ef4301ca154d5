"""The benchmark scripts in bench/ still run: each one, at a tiny size, as a subprocess (all of
them at once, to keep this quick). Only that they finish and print their table is checked here;
their numbers are for bench/RESULTS.md, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = {
    "bulk_rotation": ["--keys", "5", "--latency", "0", "--rate", "1000", "--runs", "1"],
    "footprint": ["--keys", "5", "--window", "0.5", "--settle", "0", "--no-restart"],
    "emergency_latency": ["--reps", "1", "--propagation", "0"],
    "startup": ["--reps", "1"],
    "status_page": ["--keys", "10", "--reps", "1"],
}


def rows(output: str, first_header: str) -> list[dict[str, str]]:
    """The Markdown table whose first column is ``first_header``, as dicts."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(lines) if line.split("|")[1].strip() == first_header)
    headers = [cell.strip() for cell in lines[start].strip("|").split("|")]
    body = []
    for line in lines[start + 2 :]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != len(headers):
            break
        body.append(dict(zip(headers, cells, strict=True)))
    return body


@pytest.fixture(scope="module")
def outputs() -> dict[str, subprocess.CompletedProcess[str]]:
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"bench.{name}", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in SCRIPTS.items()
    }
    done = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_bulk_rotation_prints_rotator_and_naive_rows(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.bulk_rotation exits 0 with a row for rotator (every key rotated, none failed) and
    one for the naive loop."""
    result = outputs["bulk_rotation"]
    assert result.returncode == 0, result.stderr[-3000:]
    table = {row["tool"]: row for row in rows(result.stdout, "tool")}
    assert table["rotator run --once #1"]["rotations"] == "6"
    assert table["rotator run --once #1"]["failures"] == "0"
    assert table["naive httpx loop"]["rotations"] == "5"


def test_footprint_prints_the_idle_daemon_row(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.footprint exits 0 with a row for the daemon, which scheduled every key."""
    result = outputs["footprint"]
    assert result.returncode == 0, result.stderr[-3000:]
    (cold,) = rows(result.stdout, "start")
    assert cold["keys scheduled"] == "6"
    assert cold["exit"] == "0"


def test_emergency_latency_prints_a_row_per_propagation_delay(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.emergency_latency exits 0 with one row for the one delay asked, without failures."""
    result = outputs["emergency_latency"]
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = rows(result.stdout.split("control API")[0], "propagation s")
    assert row["runs"] == "1"
    assert row["failures"] == "0"


def test_startup_prints_a_row_per_measurement(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.startup exits 0 with the import row and the `rotator --help` row."""
    result = outputs["startup"]
    assert result.returncode == 0, result.stderr[-3000:]
    measured = {row["what"] for row in rows(result.stdout, "what")}
    assert {"import rotator.cli (importtime)", "rotator --help"} <= measured


def test_bulk_rotation_reports_the_three_and_four_call_floors(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.bulk_rotation reports each row against the 3- and 4-call floors, and rotator's
    scheduled rotations (Vault knows every key) at 3 calls: create, verify, revoke."""
    result = outputs["bulk_rotation"]
    assert result.returncode == 0, result.stderr[-3000:]
    table = {row["tool"]: row for row in rows(result.stdout, "tool")}
    assert float(table["naive httpx loop"]["4-call floor s"]) >= 0
    assert table["rotator run --once #1"]["% of 3-call floor"].endswith("%")
    assert table["rotator run --once #1"]["% of 4-call floor"].endswith("%")
    assert float(table["rotator run --once #1"]["calls/rotation"]) == 3.0


def test_emergency_latency_counts_verification_calls_per_propagation(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.emergency_latency prints what 0, 2 and 30 s of propagation cost in verify calls."""
    result = outputs["emergency_latency"]
    assert result.returncode == 0, result.stderr[-3000:]
    table = rows(result.stdout.split("Verification's polling")[1], "propagation s")
    cost = {row["propagation s"]: row["verify calls"] for row in table}
    assert cost == {"0": "1", "2": "9", "30": "32"}


def test_status_page_prints_a_row_per_page(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.status_page exits 0 with the overview, filtered, JSON and key-page rows."""
    result = outputs["status_page"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(rows(result.stdout, "keys")) == 4


def test_emergency_latency_prints_the_control_api_row(
    outputs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """bench.emergency_latency also measures an emergency through the running daemon's control
    API: one row for the delay asked, the POST accepted and the old secret gone."""
    result = outputs["emergency_latency"]
    assert result.returncode == 0, result.stderr[-3000:]
    section = result.stdout.split("control API")[1].split("Verification's polling")[0]
    (row,) = rows(section, "propagation s")
    assert row["runs"] == "1"
    assert row["failures"] == "0"
