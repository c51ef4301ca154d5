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
from rotator.audit import Run, RunStatus
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
app.add_typer(db_app, name="db")


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


def get_config(*, log_stream: Any = None) -> Config:
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


def die(exc: RotatorError) -> NoReturn:
    typer.echo(f"rotator: error: {exc}", err=True)
    raise typer.Exit(_exit_code(exc))


def console() -> Any:
    """A rich console on stdout, wide enough that tables are not cut when piped."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def default_actor() -> str:
    explicit = os.environ.get("ROTATOR_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def run_line(run: Run) -> str:
    ids = f"{run.old_secret_id or '-'} -> {run.new_secret_id or '-'}"
    line = f"{run.id[:8]}  {run.api_key}  {run.status}  {ids}"
    return f"{line}  {run.error}" if run.error else line


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the audit database schema (also done at every start)."""
    from rotator import db

    try:
        engine = db.make_engine(get_config().database.url)
        revision = db.upgrade(engine)
    except RotatorError as exc:
        die(exc)
    typer.echo(f"database at revision {revision}")


def _register_commands() -> None:
    """Each feature area registers its own commands on ``app`` (rotator/commands/*.py)."""
    import importlib
    import pkgutil

    import rotator.commands

    for module in pkgutil.iter_modules(rotator.commands.__path__):
        importlib.import_module(f"rotator.commands.{module.name}")


_register_commands()


def main() -> None:
    app()


__all__ = ["RunStatus", "app", "main"]
