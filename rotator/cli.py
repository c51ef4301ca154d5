"""``rotator`` command line. Exit codes: 0 success, 1 a rotation failed or was rolled back,
2 bad usage or configuration, 3 Vault/Vonage/database unavailable, 75 the key is locked."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from rotator import logs
from rotator.audit import Run, RunStatus, Trigger
from rotator.config import CONFIG_ENV, Config, load_config
from rotator.errors import (
    ConfigError,
    DatabaseError,
    LeaseHeldError,
    RotatorError,
    VaultError,
    VonageError,
)

app = typer.Typer(
    help="Rotates Vonage API secrets through Vault, crash-safe and audited.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit log.", invoke_without_command=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


class State:
    config_path: Path | None = None
    log_format: str | None = None
    log_level: str | None = None
    config: Config | None = None


state = State()

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar=CONFIG_ENV, help="Config file (YAML).", show_default=False
    ),
]


@app.callback()
def _main(
    config: ConfigOption = None,
    log_format: Annotated[
        str | None, typer.Option(help="auto, json or console (overrides logging.format).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
) -> None:
    state.config_path = config
    state.log_format = log_format
    state.log_level = log_level


def _config(*, log_stream: Any = None) -> Config:
    if state.config is None:
        state.config = load_config(state.config_path)
        fmt = state.log_format or state.config.logging.format
        level = state.log_level or state.config.logging.level
        if fmt not in ("auto", "json", "console"):
            raise ConfigError(f"--log-format must be auto, json or console, not {fmt!r}")
        logs.configure(format=fmt, level=level, stream=log_stream or sys.stderr)  # type: ignore[arg-type]
    return state.config


def _exit_code(exc: RotatorError) -> int:
    if isinstance(exc, ConfigError):
        return 2
    if isinstance(exc, LeaseHeldError):
        return 75
    if isinstance(exc, VaultError | VonageError | DatabaseError):
        return 3
    return 1


def _die(exc: RotatorError) -> NoReturn:
    typer.echo(f"rotator: error: {exc}", err=True)
    raise typer.Exit(_exit_code(exc))


def default_actor() -> str:
    explicit = os.environ.get("ROTATOR_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _run_line(run: Run) -> str:
    ids = f"{run.old_secret_id or '-'} -> {run.new_secret_id or '-'}"
    line = f"{run.id[:8]}  {run.api_key}  {run.status}  {ids}"
    return f"{line}  {run.error}" if run.error else line


@app.command()
def rotate(
    api_key: Annotated[str, typer.Argument(help="The API key to rotate (primary or subaccount).")],
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who; defaults to $ROTATOR_ACTOR or the OS user.")
    ] = None,
    emergency: Annotated[
        bool,
        typer.Option(help="Skip the grace period and revoke every other secret of the key."),
    ] = False,
    wait: Annotated[
        float | None, typer.Option(help="Seconds to wait for a rotation in progress.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rotate one key now. Exit 0 only when the new secret is current and verified."""
    from datetime import timedelta

    from rotator.services import build

    try:
        services = build(_config())
    except RotatorError as exc:
        _die(exc)
    try:
        outcome = services.rotator.rotate(
            api_key,
            trigger=Trigger.MANUAL,
            actor=actor or default_actor(),
            reason=reason,
            emergency=emergency,
            lock_wait=timedelta(seconds=wait) if wait is not None else None,
        )
    except RotatorError as exc:
        _die(exc)
    finally:
        services.close()
    run = outcome.run
    if as_json:
        _print_json({**run.to_json(), "resumed": [r.to_json() for r in outcome.resumed]})
    else:
        for old in outcome.resumed:
            typer.echo(f"resumed   {_run_line(old)}")
        typer.echo(f"{'rotated' if outcome.ok else 'FAILED':9} {_run_line(run)}")
    if not outcome.ok:
        raise typer.Exit(1)


@audit_app.callback()
def audit(
    ctx: typer.Context,
    api_key: Annotated[str | None, typer.Option(help="Only this key.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one run a line.")] = False,
) -> None:
    """List rotation runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from rotator.audit import AuditLog
    from rotator.services import open_database

    try:
        engine = open_database(_config(), migrate=False)
        runs = AuditLog(engine).runs(api_key=api_key, limit=limit)
    except RotatorError as exc:
        _die(exc)
    for run in runs:
        typer.echo(json.dumps(run.to_json()) if as_json else _run_line(run))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the audit database schema (also done at every start)."""
    from rotator import db

    try:
        engine = db.make_engine(_config().database.url)
        revision = db.upgrade(engine)
    except RotatorError as exc:
        _die(exc)
    typer.echo(f"database at revision {revision}")


def _register_simulator() -> None:
    try:
        from rotator.simulator.cli import simulate
    except ImportError:  # pragma: no cover - the simulator ships with the package
        return
    app.command("simulate", help="Run the Vonage API simulator (for dry runs and demos).")(simulate)


_register_simulator()


def main() -> None:
    app()


__all__ = ["RunStatus", "app", "main"]
