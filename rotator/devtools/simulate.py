"""``rotator simulate``: run the Vonage simulator in the foreground for demos and dry runs.

A plain function with typer annotations, so the main CLI registers it with
``app.command("simulate")(simulate)`` and ``python -m rotator.devtools.simulator`` runs it alone.
It lives outside the simulator package and imports the simulator only when it runs, so that
registering it costs ``rotator --help`` nothing.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from rotator.errors import ConfigError

__all__ = ["simulate"]


def simulate(
    port: Annotated[int, typer.Option(help="Port of the api host (api.nexmo.com).")] = 8099,
    rest_port: Annotated[
        int | None,
        typer.Option(help="Port of the rest host (rest.nexmo.com); default: --port + 1."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; keep it on loopback.")] = "127.0.0.1",
    seed: Annotated[
        Path | None,
        typer.Option(
            help="YAML seed file (accounts and knobs); default: a primary and 3 subaccounts.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
) -> None:
    """Serve a simulated Vonage API until SIGINT or SIGTERM."""
    from rotator.devtools.simulator import DEFAULT_SEED, VonageSimulator, load_seed
    from rotator.devtools.simulator.seed import seed_kwargs

    try:
        kwargs: dict[str, Any] = load_seed(seed) if seed else seed_kwargs(DEFAULT_SEED)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if rest_port is None:
        rest_port = 0 if port == 0 else port + 1
    try:
        sim = VonageSimulator(**kwargs, host=host, api_port=port, rest_port=rest_port).start()
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host} ports {port}/{rest_port}: {exc}", err=True)
        raise typer.Exit(1) from None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        subaccounts = [key for key in sim.accounts() if key != sim.primary_api_key]
        typer.echo("Vonage simulator running (secret values are in the seed, never printed)")
        typer.echo(f"  api:  {sim.api_url}")
        typer.echo(f"  rest: {sim.rest_url}")
        typer.echo(f"  primary api key: {sim.primary_api_key}")
        typer.echo(f"  subaccounts: {', '.join(subaccounts) or '(none)'}")
        typer.echo("Press Ctrl+C to stop.")
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sim.stop()
    typer.echo("Vonage simulator stopped.")
