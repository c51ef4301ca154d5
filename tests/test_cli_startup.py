"""The command line starts without its heavy dependencies (issue 12): they are imported by the
commands that use them, so ``rotator --help`` and usage errors answer at once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
