"""The command line starts without its heavy dependencies (issue 12): they are imported by the
commands that use them, so ``rotator --help`` and usage errors answer at once, and an emergency
rotation imports only what a rotation needs."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rotator import startup
from tests.conftest import SUBACCOUNTS, World

HEAVY = ["sqlalchemy", "alembic", "hvac", "httpx", "pydantic", "rich"]

PROBE = """
import contextlib, io, json, sys
from rotator.cli import app
argv = json.loads(sys.argv[1])
if argv is not None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            app(argv, prog_name="rotator")
        except SystemExit:
            pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[2]))))
"""


def _imported(argv: list[str] | None) -> list[str]:
    """The heavy modules a fresh interpreter holds after importing the CLI (and running argv)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(done.stdout))


def test_import_cli_loads_no_heavy_dependency() -> None:
    """`import rotator.cli` imports none of SQLAlchemy, Alembic, hvac, httpx, pydantic, rich."""
    assert _imported(None) == []


@pytest.mark.parametrize("argv", [["--help"], []], ids=["help", "no-arguments"])
def test_top_level_help_loads_no_heavy_dependency(argv: list[str]) -> None:
    """`rotator --help` (or no arguments) prints help without importing a heavy dependency."""
    assert _imported(argv) == []


def test_usage_error_loads_no_database_or_client_library() -> None:
    """A usage error imports no database, Vault, HTTP or table library before exiting."""
    loaded = _imported(["rotate", "--no-such-option"])
    # Typer (0.29) itself coerces a sub-command's parameters through pydantic; nothing of ours.
    assert [m for m in loaded if m.split(".")[0] != "pydantic"] == []


# What `rotator rotate KEY --emergency` never needs: Alembic (the schema is at head: one query),
# SQLAlchemy's ORM (the tables are Core), hvac/requests (Vault is spoken to over httpx), rich and
# its pygments (no table; structlog is imported without it), the webhook deliverer and Prometheus
# (no endpoint configured), APScheduler (no cron schedule), the daemon's parts, and every other
# command's module (the CLI imports only the command it runs).
NOT_ON_THE_ROTATE_PATH = [
    "alembic",
    "apscheduler",
    "hvac",
    "prometheus_client",
    "pygments",
    "requests",
    "rich",
    "rotator.commands.adopt",
    "rotator.commands.audit",
    "rotator.commands.daemon",
    "rotator.commands.demo",
    "rotator.commands.events",
    "rotator.commands.holds",
    "rotator.commands.inspect",
    "rotator.commands.lease",
    "rotator.commands.rollback",
    "rotator.commands.schema",
    "rotator.commands.simulate",
    "rotator.control",
    "rotator.daemon",
    "rotator.devtools.demo",
    "rotator.devtools.simulate",
    "rotator.devtools.simulator",
    "rotator.events.deliverer",
    "rotator.httpserver",
    "rotator.statuspage",
    "sqlalchemy.orm",
    "urllib3",
]

MAIN_PROBE = """
import gc, json, runpy, sys
default = gc.get_threshold()
argv, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["rotator", *argv]
try:
    runpy.run_module("rotator", run_name="__main__", alter_sys=True)  # python -m rotator
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names))
gc_state = {"after": gc.get_threshold(), "default": default, "enabled": gc.isenabled()}
print(json.dumps({"code": code, "loaded": loaded, "gc": gc_state}))
"""

SUB = "sub00001"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


def _run_main(world: World, argv: list[str]) -> dict[str, object]:
    """``rotator ARGV`` through the real entry point in a fresh interpreter: its exit code, the
    listed modules it imported, and the collector's thresholds afterwards (and by default)."""
    full = ["--config", str(world.config_file()), *argv]
    done = subprocess.run(
        [sys.executable, "-c", MAIN_PROBE, json.dumps(full), json.dumps(NOT_ON_THE_ROTATE_PATH)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _seeded(world: World) -> World:
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    return world


def test_an_emergency_rotation_imports_nothing_it_does_not_need(migrated: World) -> None:
    """`rotate KEY --emergency` on a database at the current schema succeeds without importing
    Alembic, hvac, rich, the webhook deliverer, APScheduler or the daemon."""
    result = _run_main(_seeded(migrated), ["rotate", SUB, "--emergency", "--reason", "leak"])
    assert result["code"] == 0
    assert result["loaded"] == []


def test_a_command_collects_garbage_as_usual_once_its_services_are_built(world: World) -> None:
    """The collector, paused while the command line starts, collects again with the
    interpreter's defaults once the command's services are built: the rotation runs with them."""
    result = _run_main(_seeded(world), ["rotate", SUB, "--emergency", "--reason", "leak"])
    gc_state: dict[str, object] = result["gc"]  # type: ignore[assignment]
    assert result["code"] == 0
    assert gc_state["enabled"] is True
    assert gc_state["after"] == gc_state["default"]


def test_a_command_that_builds_no_services_still_collects_garbage(world: World) -> None:
    """A command that never builds services (`db upgrade`) runs its own code with the
    collector on (start-up's spaced-out thresholds), not paused as while arguments parse."""
    result = _run_main(world, ["db", "upgrade"])
    gc_state: dict[str, object] = result["gc"]  # type: ignore[assignment]
    assert result["code"] == 0
    assert gc_state["enabled"] is True
    assert gc_state["after"] == list(startup.STARTUP_THRESHOLDS)


def test_the_collector_pauses_until_the_command_starts_and_nests() -> None:
    """``begin`` pauses collections; the end of the first ``loading`` block resumes them with
    start-up's thresholds (a nested block leaves the outer one's pause alone); ``done`` restores
    the interpreter's thresholds. Run in a fresh interpreter: it changes process-wide state."""
    probe = """
import gc, json
from rotator import startup
default = gc.get_threshold()
seen = [gc.isenabled()]
startup.begin()
seen.append(gc.isenabled())
with startup.loading():
    with startup.loading():
        pass
    seen.append(gc.isenabled())
seen.append(gc.isenabled())
startup.done()
print(json.dumps({"seen": seen, "restored": gc.get_threshold() == default}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == {"seen": [True, False, False, True], "restored": True}


def test_a_hostile_api_key_exits_2_before_any_connection(world: World, tmp_path: Path) -> None:
    """`rotate 'zz/../x' --emergency` exits 2 before the config's Vault, database or Vonage is
    touched (nothing listens at the config's Vault; no database file appears)."""
    world.configure(vault={"url": "http://127.0.0.1:9"})
    world.configure(database={"url": f"sqlite:///{tmp_path / 'never.db'}"})
    result = _run_main(world, ["rotate", "zz/../x", "--emergency", "--reason", "leak"])
    assert result["code"] == 2
    assert not (tmp_path / "never.db").exists()
    assert world.sim.calls == []


def test_console_logs_render_without_rich(migrated: World, run_cli: Any) -> None:
    """With structlog imported without rich, `--log-format console` still renders every line
    (as text, not JSON) for a whole emergency rotation."""
    _seeded(migrated)
    done = run_cli("--log-format", "console", "rotate", SUB, "--emergency", "--reason", "leak")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rotation_succeeded" in done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("{")]


def test_services_built_outside_the_command_line_leave_the_collector_alone() -> None:
    """Without the command line's start-up (tests, a library user), ``startup.done`` changes
    neither the collector's thresholds nor what is frozen."""
    before = (gc.get_threshold(), gc.get_freeze_count())
    startup.done()
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
