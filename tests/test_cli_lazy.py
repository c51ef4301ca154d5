"""The command line imports the one command its arguments name (issue 12): ``rotator --help``
still lists every command with its one-line help, a command never imports another's module, and
an unknown or misspelt command is still a usage error (exit 2) naming the commands it resembles.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.core import TyperCommand

from rotator.cli import COMMANDS, load_command

COMMAND_MODULES = sorted({entry.target.split(":")[0] for entry in COMMANDS.values()})

PROBE = """
import contextlib, io, json, sys
from rotator.cli import app
argv = json.loads(sys.argv[1])
out, err = io.StringIO(), io.StringIO()
code = 0
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        app(argv, prog_name="rotator")
    except SystemExit as exc:
        code = exc.code
loaded = sorted(m for m in sys.modules if m.startswith("rotator.commands.") or m == "structlog")
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(), "loaded": loaded}))
"""


def _fresh(argv: list[str]) -> dict[str, object]:
    """``rotator ARGV`` in a fresh interpreter: exit code, output, and which command modules
    (and whether structlog) it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _listed(help_text: str) -> dict[str, str]:
    """The Commands section of a help text: name → its line (one line each at this width)."""
    section = help_text.split("Commands:\n", 1)[1]
    rows = [line.split(None, 1) for line in section.splitlines() if line.startswith("  ")]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_help_lists_every_command_without_importing_one() -> None:
    """`rotator --help` lists every command with its one-line help, and imports no command's
    module (only the options every command shares) nor structlog."""
    result = _fresh(["--help"])
    assert result["code"] == 0
    assert list(_listed(str(result["out"]))) == list(COMMANDS)
    assert result["loaded"] == ["rotator.commands.context"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    """What `rotator --help` lists for a command (kept in ``COMMANDS``, so that listing imports
    nothing) is what the command's own help shortens to: the two cannot drift apart."""
    loaded = load_command(name)
    for limit in (10_000, 45):
        listed = TyperCommand(name="-", help=COMMANDS[name].summary).get_short_help_str(limit)
        assert listed == loaded.get_short_help_str(limit)


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["rotate", "--help"], "rotator.commands.rotate"),
        (["audit", "--help"], "rotator.commands.audit"),
        (["run", "--help"], "rotator.commands.daemon"),
        (["db", "upgrade", "--help"], "rotator.commands.schema"),
    ],
)
def test_a_command_imports_its_own_module_only(argv: list[str], module: str) -> None:
    """A command's help imports that command's module and no other command's, nor structlog
    (imported once a command's own code runs)."""
    result = _fresh(argv)
    assert result["code"] == 0, result["err"]
    assert result["loaded"] == sorted(["rotator.commands.context", module])
    assert f"Usage: rotator {' '.join(argv[:-1])}" in str(result["out"])


def test_a_usage_error_imports_neither_structlog_nor_another_command() -> None:
    """`rotate --no-such-option` exits 2 before the command's code (or structlog) runs."""
    result = _fresh(["rotate", "--no-such-option"])
    assert result["code"] == 2
    assert "No such option: --no-such-option" in str(result["err"])
    assert result["loaded"] == ["rotator.commands.context", "rotator.commands.rotate"]


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("rotat", "'rotate'"), ("leese", "'lease'"), ("stauts", "'status'")],
)
def test_a_misspelt_command_is_a_usage_error_naming_the_command(name: str, suggested: str) -> None:
    """An unknown command exits 2, suggesting the command it resembles (not yet imported)."""
    result = _fresh([name, "x"])
    assert result["code"] == 2
    assert f"No such command {name!r}" in str(result["err"])
    assert f"Did you mean {suggested}" in str(result["err"])
    assert result["loaded"] == ["rotator.commands.context"]


def test_an_unknown_command_like_nothing_is_a_usage_error() -> None:
    """A name that resembles no command: exit 2, no suggestion, nothing imported."""
    result = _fresh(["zzzzzz"])
    assert result["code"] == 2
    assert "No such command 'zzzzzz'" in str(result["err"])
    assert "Did you mean" not in str(result["err"])
    assert result["loaded"] == ["rotator.commands.context"]


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_every_target_names_a_command(module: str) -> None:
    """Each ``COMMANDS`` target imports and builds (a renamed function fails here, not at an
    operator's prompt)."""
    for name, entry in COMMANDS.items():
        if entry.target.startswith(module + ":"):
            assert load_command(name).name == name
