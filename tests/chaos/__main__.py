"""``python -m tests.chaos --runs 1000 [--seed N] [--keys 8]`` (what ``scripts/chaos`` runs).

Prints a table at the end; exits 1 if any promise was broken, 0 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from tests.chaos.harness import ChaosHarness
from tests.chaos.plan import KINDS


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/chaos",
        description="Rotate keys under injected faults (Vonage, Vault, PostgreSQL, SIGKILL), "
        "recover, and check rotator's promises after every run.",
    )
    parser.add_argument("--runs", type=int, default=100, help="chaos runs (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    parser.add_argument("--keys", type=int, default=8, help="primary + subaccounts (default 8)")
    parser.add_argument(
        "--max-propagation",
        type=float,
        default=30.0,
        help="longest Vonage propagation delay in seconds (default 30)",
    )
    parser.add_argument(
        "--max-kinds", type=int, default=3, help="most fault kinds in one run (default 3)"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated fault kinds to deal from (default all: {','.join(KINDS)})",
    )
    parser.add_argument(
        "--time-budget", type=float, default=None, help="start no new run after this many seconds"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep servers' data and logs here"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep logs of clean runs too")
    parser.add_argument(
        "--spawn",
        choices=["fork", "exec"],
        default="fork",
        help="start each rotator by fork from a warm zygote (default) or as a fresh "
        "`python -m rotator` (slower: ~1.5 s of imports per process)",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.keys < 1 or args.max_kinds < 1:
        parser.error("--runs, --keys and --max-kinds must be >= 1")
    args.kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = sorted(set(args.kinds) - set(KINDS))
    if unknown or not args.kinds:
        parser.error(f"unknown fault kinds {unknown}; choose from {', '.join(KINDS)}")
    return args


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rotator-chaos-"))
    print(
        f"chaos: {args.runs} runs, {args.keys} keys, seed {args.seed}, spawn {args.spawn}; "
        f"logs in {workdir}"
    )
    interrupted = False
    with ChaosHarness(
        workdir,
        keys=args.keys,
        seed=args.seed,
        max_propagation=args.max_propagation,
        max_kinds=args.max_kinds,
        kinds=args.kinds,
        keep_logs=args.keep_logs,
        spawn=args.spawn,
    ) as harness:
        if not args.quiet:
            harness.progress = lambda line: print(line, flush=True)
        try:
            harness.run(args.runs, time_budget=args.time_budget)
        except KeyboardInterrupt:
            interrupted = True
            print("interrupted: stopping servers", file=sys.stderr)
        stats = harness.stats
    print(stats.table())
    if args.workdir is None and not stats.violations and not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)  # a clean run leaves nothing behind
    if stats.violations:
        print(f"{len(stats.violations)} INVARIANT VIOLATIONS:")
        for line in stats.violations:
            print(f"  {line}")
        return 1
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
