"""``rotator`` command line. Exit codes: 0 success, 1 a rotation failed or was rolled back,
2 bad usage or configuration (also: nothing left to roll back), 3 Vault/Vonage/database
unavailable, 4 the key's previous secret is in its grace period (try at the time named),
75 the key is locked.

Commands live in rotator/commands/ and are registered here, by name. A command raises the
project's errors; the one handler below (``RotatorGroup.invoke``, which ``main`` and every other
entry point go through) prints ``rotator: error: ...`` and maps the error to the exit code.
Start-up is kept light: SQLAlchemy, Alembic, httpx, pydantic and rich are imported inside
the commands that use them, so ``rotator --help`` and usage errors answer at once; ``main`` runs
every command under ``rotator.startup`` (the collector while modules load, structlog without
rich).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from rotator.commands import (
    adopt,
    audit,
    daemon,
    demo,
    events,
    holds,
    inspect,
    lease,
    rollback,
    rotate,
    schema,
    simulate,
)
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


class RotatorGroup(TyperGroup):
    """The top-level group: every command and sub-command runs inside its ``invoke``."""

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


app.command()(rotate.rotate)
app.command()(rollback.rollback)
app.command()(inspect.plan)
app.command()(inspect.status)
app.command()(inspect.check)
app.command()(adopt.adopt)
app.command()(events.events)
app.command()(holds.pause)
app.command()(holds.resume)
app.add_typer(audit.audit_app, name="audit")
app.add_typer(lease.lease_app, name="lease")
app.add_typer(schema.db_app, name="db")
app.command("run")(daemon.run_daemon)
app.command()(demo.demo)
app.command("simulate", help="Run the Vonage API simulator (for dry runs and demos).")(
    simulate.simulate
)


def main() -> None:
    from rotator import startup

    startup.begin()
    with startup.loading():
        startup.import_structlog_without_rich()
    try:
        app()
    finally:
        startup.at_exit()


__all__ = ["app", "exit_code", "main"]
