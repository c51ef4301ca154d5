"""``rotator`` command line. Exit codes: 0 success, 1 a rotation failed or was rolled back,
2 bad usage or configuration (also: nothing left to roll back), 3 Vault/Vonage/database
unavailable, 4 the key's previous secret is in its grace period (try at the time named),
75 the key is locked.

Commands live in rotator/commands/ and are registered here, by name, in ``COMMANDS``: the group
imports the one command its arguments name (click's "lazy group"), so ``rotator rotate`` never
imports the daemon's, the audit reader's or the demo's modules, and ``rotator --help`` lists
every command from the one-line help kept next to its name, importing none of them. A command
raises the project's errors; the one handler below (``RotatorGroup.invoke``, which ``main`` and
every other entry point go through) prints ``rotator: error: ...`` and maps the error to the
exit code. Start-up is kept light: SQLAlchemy, Alembic, httpx, pydantic and rich are imported
inside the commands that use them, and structlog (without rich: ``rotator.startup``) once a
command's own code starts, so ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from difflib import get_close_matches
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from typer.core import TyperCommand, TyperGroup

from rotator.commands.context import options
from rotator.errors import (
    ConfigError,
    DatabaseError,
    GracePeriodActiveError,
    LeaseHeldError,
    NothingToRollBackError,
    RotatorError,
    VaultError,
    VonageError,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_GRACE = 4
EXIT_LOCKED = 75


def exit_code(exc: RotatorError) -> int:
    """The README's exit-code table."""
    if isinstance(exc, ConfigError | NothingToRollBackError):
        return EXIT_USAGE
    if isinstance(exc, GracePeriodActiveError):
        return EXIT_GRACE
    if isinstance(exc, LeaseHeldError):
        return EXIT_LOCKED
    if isinstance(exc, VaultError | VonageError | DatabaseError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


@dataclass(frozen=True)
class Entry:
    """A command as ``rotator --help`` lists it, and where it lives."""

    target: str  # "module:attribute": a command function, or a typer.Typer of sub-commands
    summary: str  # its help's first sentence (tests/test_cli_lazy.py checks it against the help)
    help: str | None = None  # help given at registration instead of the function's docstring


# Every command, in ``rotator --help``'s order.
COMMANDS: Final[dict[str, Entry]] = {
    "rotate": Entry("rotator.commands.rotate:rotate", "Rotate now."),
    "rollback": Entry(
        "rotator.commands.rollback:rollback",
        "Make the previous secret current again and revoke the newer one.",
    ),
    "plan": Entry(
        "rotator.commands.inspect:plan",
        "Show what rotator sees for each key and exactly what it would do.",
    ),
    "status": Entry(
        "rotator.commands.inspect:status",
        "Every key: secret count, current secret and age, last run, next due, lease holder.",
    ),
    "check": Entry(
        "rotator.commands.inspect:check",
        "Validate the config and connectivity; one actionable line per problem.",
    ),
    "adopt": Entry(
        "rotator.commands.adopt:adopt",
        "Tell rotator which Vonage secret is current, for a key it cannot tell (audited).",
    ),
    "events": Entry(
        "rotator.commands.events:events",
        "List consumer event deliveries that are pending or failing (exit 0 either way).",
    ),
    "pause": Entry(
        "rotator.commands.holds:pause",
        "Hold scheduled and manual rotations of a key (emergencies still run), on every replica.",
    ),
    "resume": Entry(
        "rotator.commands.holds:resume",
        "Lift a pause and clear a stuck key's failure count: automatic rotations start again.",
    ),
    "run": Entry(
        "rotator.commands.daemon:run_daemon",
        "Rotate every key on schedule until SIGTERM/SIGINT (then exit 0 once the rotations in "
        "flight have finished); serve /healthz, /readyz, /metrics and /status on http.listen.",
    ),
    "demo": Entry(
        "rotator.commands.demo:demo",
        "Rotate every key of a simulated Vonage account through a throwaway OpenBao and SQLite.",
    ),
    "simulate": Entry(
        "rotator.commands.simulate:simulate",
        "Run the Vonage API simulator (for dry runs and demos).",
        help="Run the Vonage API simulator (for dry runs and demos).",
    ),
    "audit": Entry("rotator.commands.audit:audit_app", "Read and verify the audit log."),
    "lease": Entry("rotator.commands.lease:lease_app", "Inspect and break per-key leases."),
    "db": Entry("rotator.commands.schema:db_app", "Audit database schema."),
}


def load_command(name: str) -> Any:
    """``COMMANDS[name]`` as a click command, built as the whole app would build it (plain help,
    no rich), each of its callbacks wrapped by ``_starting``."""
    entry = COMMANDS[name]
    module, attribute = entry.target.split(":")
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name, help=entry.help)(target)
    command = typer.main.get_group(holder).commands[name]
    _wrap_callbacks(command)
    return command


def _wrap_callbacks(command: Any) -> None:
    if command.callback is not None:
        command.callback = _starting(command.callback)
    for sub in getattr(command, "commands", {}).values():
        _wrap_callbacks(sub)


def _starting(callback: Callable[..., Any]) -> Callable[..., Any]:
    """A callback runs once its command's arguments parsed: only then is structlog imported
    (without rich) and start-up's pause of the collector ended (``rotator.startup``), so
    ``--help`` and usage errors do neither."""

    @wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        from rotator import startup

        with startup.loading():
            startup.import_structlog_without_rich()
        return callback(*args, **kwargs)

    return run


def _short(summary: str, limit: int) -> str:
    return str(TyperCommand(name="-", help=summary).get_short_help_str(limit))


class RotatorGroup(TyperGroup):
    """The top-level group: every command and sub-command runs inside its ``invoke``; a
    command's module is imported when its name is looked up (``COMMANDS``)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands' one-line helps from ``COMMANDS``: listing them imports none. Shortened
        to fit as click shortens a loaded command's help (a stand-in command does it)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _short(self._summary(name), limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _summary(self, name: str) -> str:
        if name in COMMANDS:
            return COMMANDS[name].summary
        return str(self.commands[name].get_short_help_str(10_000))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As typer's, suggesting among every command, not only those already imported."""
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:  # click's UsageError (typer vendors click: no public name)
            message = getattr(exc, "message", None)
            if isinstance(message, str) and args and "Did you mean" not in message:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    names = ", ".join(repr(m) for m in matches)
                    exc.message = f"{message.rstrip('.')}. Did you mean {names}?"  # type: ignore[attr-defined]
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RotatorError as exc:
            from rotator.escape import terminal
            from rotator.redact import scrub

            typer.echo(f"rotator: error: {terminal(scrub(str(exc)))}", err=True)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(
    cls=RotatorGroup,
    help="Rotates Vonage API secrets through Vault, crash-safe and audited.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: rich is not imported for --help
)


@app.callback()
def _main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (YAML); default: the file named by $ROTATOR_CONFIG.",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="auto, json or console (overrides logging.format).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
) -> None:
    from rotator.process import harden_process

    harden_process()  # before any command reads a secret: no core dumps, not dumpable
    options.config_path = config
    options.log_format = log_format
    options.log_level = log_level


def main() -> None:
    from rotator import startup

    startup.begin()
    try:
        app()
    finally:
        startup.at_exit()


__all__ = ["COMMANDS", "app", "exit_code", "load_command", "main"]
