"""Run every benchmark, one after the other, and print their tables after the machine's details
(Markdown, ready for bench/RESULTS.md). Run it on a quiet machine: the numbers are only as good
as the load average printed with each. The bulk rows use 200 subaccounts (the floors scale
with them) and the footprint rows skip the settling pass, to keep a shared machine's run short.

    .venv/bin/python -m bench.run_all                  # SQLite and PostgreSQL: ~8 minutes
    .venv/bin/python -m bench.run_all --quick          # tiny sizes: checks the scripts run
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench._common import REPO, machine, parser

FULL: dict[str, list[str]] = {
    "startup": [],
    "bulk_rotation": ["--keys", "200", "--runs", "1"],
    "bulk_rotation@postgresql": [
        "--keys",
        "200",
        "--runs",
        "1",
        "--database",
        "postgresql",
        "--no-baseline",
    ],
    "bulk_rotation@first": ["--keys", "200", "--runs", "1", "--scenario", "first", "--no-baseline"],
    "footprint": ["--settle", "0", "--window", "5"],
    "footprint@postgresql": ["--settle", "0", "--window", "5", "--database", "postgresql"],
    "emergency_latency": ["--reps", "3"],
    "emergency_latency@postgresql": ["--reps", "3", "--database", "postgresql"],
    "status_page": [],
}
QUICK: dict[str, list[str]] = {
    "startup": ["--reps", "1"],
    "bulk_rotation": ["--keys", "5", "--latency", "0", "--rate", "1000", "--runs", "1"],
    "footprint": ["--keys", "5", "--window", "1", "--settle", "0", "--no-restart"],
    "emergency_latency": ["--reps", "1", "--propagation", "0"],
    "status_page": ["--keys", "10", "--reps", "1"],
}


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args.add_argument("--only", choices=sorted(FULL), action="append", help="repeatable")
    opts = args.parse_args()
    plan = QUICK if opts.quick else FULL
    print("## Machine")
    print()
    print(machine())
    failed = []
    for name in opts.only or list(plan):
        command = [sys.executable, "-m", f"bench.{name.split('@')[0]}", *plan[name]]
        started = time.monotonic()
        print(f"\nload average before {name}: {_load()}")
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        print()
        print(done.stdout.rstrip())
        print()
        shown = " ".join([".venv/bin/python", *command[1:]])
        print(f"`{shown}` ({time.monotonic() - started:.0f} s, load after: {_load()})")
        if done.returncode != 0:
            failed.append(name)
            print(f"\n{name} FAILED (exit {done.returncode}):\n```\n{done.stderr[-3000:]}\n```")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
