"""CLI start-up: ``import rotator.cli`` (``python -X importtime``) and the wall time of
``rotator --help`` and of a usage error, each repeated in fresh processes (issue 12 targets:
≤ 0.25 s and ≤ 0.4 s).

    .venv/bin/python -m bench.startup               # 10 repetitions
    .venv/bin/python -m bench.startup --reps 3
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench._common import compile_bytecode, median, parser, table

TARGETS = {"import rotator.cli (importtime)": 0.25, "rotator --help": 0.4}


def rotator_command() -> list[str]:
    """The installed ``rotator`` script next to this Python, else ``python -m rotator``."""
    script = Path(sys.executable).parent / "rotator"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rotator"]


def import_seconds() -> float:
    """``rotator.cli``'s cumulative import time as ``-X importtime`` reports it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import rotator.cli"],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in reversed(done.stderr.splitlines()) if x.endswith("| rotator.cli"))
    return int(line.split("|")[1]) / 1e6


def wall_seconds(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, capture_output=True, check=False)
    return time.monotonic() - started


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--reps", type=int, default=10, help="fresh processes per row (10)")
    opts = args.parse_args()
    compile_bytecode()
    cli = rotator_command()
    reps = range(opts.reps)
    samples = {
        "import rotator.cli (importtime)": [import_seconds() for _ in reps],
        "rotator --help": [wall_seconds([*cli, "--help"]) for _ in reps],
        "rotator rotate --help": [wall_seconds([*cli, "rotate", "--help"]) for _ in reps],
        "rotator rotate --no-such-option": [
            wall_seconds([*cli, "rotate", "--no-such-option"]) for _ in reps
        ],
    }
    print(f"## CLI start-up, {opts.reps} fresh processes each")
    print()
    rows = [
        [what, median(values), min(values), max(values), TARGETS.get(what, "-")]
        for what, values in samples.items()
    ]
    print(table(["what", "median s", "min s", "max s", "target s"], rows))


if __name__ == "__main__":
    main()
