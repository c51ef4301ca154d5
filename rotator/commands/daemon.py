"""``rotator run``: the daemon (or, with ``--once``, one pass over the keys that are due)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rotator.commands.context import get_config


def run_daemon(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Rotate every key that is due now (subaccounts first), then exit: "
            "0 if all succeeded, 1 if any failed. For cron jobs and tests.",
        ),
    ] = False,
) -> None:
    """Rotate every key on schedule until SIGTERM/SIGINT (then exit 0 once the rotations in
    flight have finished); serve /healthz, /readyz, /metrics and /status on http.listen. Logs go
    to stdout, as JSON lines unless logging.format is console (or auto on a terminal)."""
    from rotator.daemon import Daemon
    from rotator.devtools import pausepoints

    daemon = Daemon(get_config(log_stream=sys.stdout), boundary=pausepoints.from_environment())
    code = daemon.run_once() if once else daemon.run()
    raise typer.Exit(code)
