"""``rotator simulate``: the Vonage API simulator as a command."""

from rotator.cli import app
from rotator.simulator.cli import simulate

app.command("simulate", help="Run the Vonage API simulator (for dry runs and demos).")(simulate)
