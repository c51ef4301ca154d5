"""``python -m rotator.devtools.simulator --port 8099``: the simulator alone, without the CLI."""

import typer

from rotator.devtools.simulate import simulate

typer.run(simulate)
