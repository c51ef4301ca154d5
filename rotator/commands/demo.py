"""``rotator demo``: see rotator work, with nothing installed or configured beforehand."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from rotator.commands.context import console

if TYPE_CHECKING:
    from rich.console import Console

    from rotator.devtools.demo import DemoSetup

INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def demo(
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="After the rotations, run the daemon (`rotator run`) with its status page "
            "until Ctrl-C.",
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the config file, audit database and logs here "
            "(default: a temporary directory, removed at the end).",
            file_okay=False,
        ),
    ] = None,
    propagation_delay: Annotated[
        float,
        typer.Option(
            min=0.0, max=30.0, help="Seconds the simulator takes before a new secret works."
        ),
    ] = 1.0,
    interval: Annotated[
        str, typer.Option(help="The daemon's rotation interval with --keep-running.")
    ] = "2m",
) -> None:
    """Rotate every key of a simulated Vonage account through a throwaway OpenBao and SQLite.

    Starts an OpenBao dev server and the Vonage simulator (a primary and three subaccounts),
    seeds Vault with the primary's secret, rotates every key once, shows the status and the
    audit trail, verifies the audit hash chain, then stops everything (also on Ctrl-C).
    Secret values are never printed.
    """
    from rotator import logs
    from rotator.devtools import demo as steps

    out = console()
    logs.configure(format="console", level="warning", stream=sys.stderr)
    # Ctrl-C works even when started with SIGINT ignored (e.g. from a script's background job).
    previous = {signum: signal.signal(signum, _interrupt) for signum in STOP_SIGNALS}

    try:
        with steps.workdir(workdir) as directory, ExitStack() as stack:
            out.print(f"[bold]rotator demo[/] in {directory}")
            setup = steps.start(
                stack,
                directory,
                propagation_delay=propagation_delay,
                interval=interval,
                say=_sayer(out),
            )
            result = steps.run_rotations(setup, out)
            rotated = sum(1 for o in result.outcomes if o.ok)
            vault = setup.config.vault
            out.print(
                f"{rotated} of {len(result.outcomes)} keys rotated; applications reading "
                f"{vault.mount}/{vault.path_prefix}/<api_key> now get the new secrets."
            )
            if keep_running and not result.ok:
                out.print("[red]Not starting the daemon[/]: a rotation failed (see above).")
            elif keep_running:
                _keep_running(out, stack, setup, directory, interval)
    except KeyboardInterrupt:
        out.print("\n[yellow]Interrupted[/]: stopped OpenBao and the simulator.")
        raise typer.Exit(INTERRUPTED) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if workdir is not None:
        out.print(f"Kept {workdir}: try `rotator --config {workdir / 'config.yaml'} audit`.")
    out.print("Everything the demo started has stopped.")
    if not result.ok:
        raise typer.Exit(1)


def _sayer(out: Console) -> Callable[[str, str], None]:
    """How a start-up step reports itself: one green line, flushed at once."""

    def say(what: str, detail: str) -> None:
        out.print(f"  [green]ok[/] {what:<21} {detail}")
        out.file.flush()

    return say


def _keep_running(
    out: Console, stack: ExitStack, setup: DemoSetup, directory: Path, interval: str
) -> None:
    """``--keep-running``: the daemon with its status page, until Ctrl-C."""
    from rotator.devtools import demo as steps

    process = steps.start_daemon(stack, setup)
    out.print()
    out.print(f"[bold]Daemon running[/] (`rotator run`, log: {directory}/daemon.log)")
    out.print(f"  status page: {setup.status_url}")
    out.print(f"  metrics:     {setup.status_url.replace('/status', '/metrics')}")
    out.print(f"  try:         rotator --config {setup.config_path} status")
    out.print(f"  every key rotates again every {interval}. Press Ctrl-C to stop.")
    out.file.flush()
    try:
        steps.watch_daemon(process)
    except KeyboardInterrupt:
        out.print("\nStopping the daemon, the simulator and OpenBao...")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: unwind through every cleanup step, which a second Ctrl-C must not cut
    short (each step is bounded by its own timeout)."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt
