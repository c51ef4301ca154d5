"""``python -m rotator.simulator --port 8099``: the simulator without the rest of the CLI."""

import typer

from rotator.simulator.cli import simulate

typer.run(simulate)
