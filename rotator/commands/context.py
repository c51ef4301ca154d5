"""What every command shares: the global options, the config (loaded once, on first use, with
logging set up from it), the operator's name and output helpers.

Light on purpose: ``rotator --help`` imports this module, so pydantic, rich and the config
loader are imported only when a command asks for them.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rotator.errors import ConfigError

if TYPE_CHECKING:
    from rotator.audit import Run
    from rotator.config import Config


@dataclass
class Options:
    """The options given before the command (``rotator --config X --log-level debug ...``)."""

    config_path: Path | None = None
    log_format: str | None = None
    log_level: str | None = None
    config: Config | None = None


options = Options()


def get_config(*, log_stream: Any = None) -> Config:
    """The config file's settings; the first call also configures logging from them."""
    if options.config is None:
        from rotator import logs
        from rotator.config import load_config

        options.config = load_config(options.config_path)
        fmt = options.log_format or options.config.logging.format
        level = options.log_level or options.config.logging.level
        if fmt not in ("auto", "json", "console"):
            raise ConfigError(f"--log-format must be auto, json or console, not {fmt!r}")
        logs.configure(format=fmt, level=level, stream=log_stream or sys.stderr)  # type: ignore[arg-type]
    return options.config


def api_key_argument(text: str) -> str:
    """An ``API_KEY`` argument, validated before anything uses it (a bad one exits 2)."""
    from rotator.identifiers import parse_api_key

    return parse_api_key(text, source="argument API_KEY")


def console() -> Any:
    """A rich console on stdout, wide enough that tables are not cut when piped."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False, emoji=False)


def default_actor() -> str:
    explicit = os.environ.get("ROTATOR_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def print_json(data: Any) -> None:
    """JSON (control characters are escaped by json), secret values scrubbed."""
    from rotator.redact import scrub

    typer.echo(scrub(json.dumps(data, indent=2, default=str)))


def run_line(run: Run) -> str:
    """One run on one line, every outside value with its control characters shown, not acted on."""
    from rotator.escape import terminal
    from rotator.redact import scrub

    ids = f"{run.old_secret_id or '-'} -> {run.new_secret_id or '-'}"
    line = f"{run.id[:8]}  {run.api_key}  {run.status}  {ids}"
    return terminal(scrub(f"{line}  {run.error}" if run.error else line))
