"""Bulk rotation against Vonage's rate limit: how close does ``rotator run --once`` get to it?

500 subaccounts (and the primary) on the simulator with 20 ms latency per call and a 50 calls/s
limit; rotator configured as a user would for bulk: ``vonage.max_calls_per_second`` = the limit,
``rotation.max_parallel`` 32 workers (with 3 calls per rotation, 16 leave the limiter idle while
workers do their Vault and database steps on a loaded machine), every key due (``--once``
rotates never-rotated keys at once), a real OpenBao dev server and a SQLite (or PostgreSQL)
audit log. Each run starts from scratch.

Two scenarios (``--scenario``): ``scheduled`` (the default), every key's current secret and
its id already in Vault as a previous rotation leaves them, so each rotation creates first
(create, verify, revoke: 3 calls); ``first``, the subaccounts unknown to Vault (their first
rotation lists to learn the old secret's id: 4 calls).

The floor is the time the Vonage calls rotator needs take at the limit: (calls answered) /
limit, less the bucket's initial burst; the 3- and 4-call floors are the same for 3 and 4 calls
per rotation (create, verify, revoke; and the listing before them), whatever rotator sent. All
scale with ``--keys``. "% of floor" = floor / wall, wall being the whole command (start-up
included). Calls per rotation and 429s come from the simulator's own call log; CPU is the
rotator process's user + system time. The naive baseline (bench/naive_baseline.py: list,
create, delete) runs in the same invocation against a fresh simulator with the same settings.

    .venv/bin/python -m bench.bulk_rotation                      # the issue's numbers, 3 runs
    .venv/bin/python -m bench.bulk_rotation --scenario first     # first rotations (4 calls)
    .venv/bin/python -m bench.bulk_rotation --keys 5 --latency 0 --rate 1000 --runs 1
"""

from __future__ import annotations

import re
import resource
import sys
from collections import Counter
from dataclasses import dataclass

from bench import naive_baseline
from bench._common import PRIMARY, Stack, now, parser, run, stack, table
from rotator import db
from rotator.audit import AuditLog, RunStatus
from rotator.devtools.simulator import CallRecord

KINDS = (
    ("list", "GET", re.compile(r"/accounts/[^/]+/secrets$")),
    ("create", "POST", re.compile(r"/accounts/[^/]+/secrets$")),
    ("revoke", "DELETE", re.compile(r"/accounts/[^/]+/secrets/[^/]+$")),
    ("balance", "GET", re.compile(r"/account/get-balance$")),
    ("subaccounts", "GET", re.compile(r"/accounts/[^/]+/subaccounts$")),
)


def kind(call: CallRecord) -> str:
    for name, method, pattern in KINDS:
        if call.method == method and pattern.search(call.path):
            return name
    return f"{call.method} {call.path}"


@dataclass(frozen=True)
class BulkResult:
    keys: int
    rotations: int
    failures: int
    wall: float
    window: float  # first Vonage call started -> last one finished
    cpu: float  # CPU seconds (user + system) of the rotator process
    answered: int  # calls not refused with 429
    throttled: int
    by_kind: Counter[str]
    exit_code: int
    burst: float
    rate: float

    @property
    def floor(self) -> float:
        """Seconds the answered calls need at ``rate``, the bucket's initial burst free."""
        return max(0.0, self.answered - self.burst) / self.rate

    def floor_of(self, calls: int) -> float:
        """Seconds ``calls`` calls per rotation and the subaccount listing need at ``rate``
        (3: create, verify, revoke; 4: and the listing before), whatever rotator sent."""
        needed = calls * self.rotations + self.by_kind.get("subaccounts", 0)
        return max(0.0, needed - self.burst) / self.rate

    @property
    def per_rotation(self) -> float:
        rotation_calls = self.answered - self.by_kind.get("subaccounts", 0)
        return rotation_calls / self.rotations if self.rotations else 0.0


def bulk(world: Stack, *, rate: float) -> BulkResult:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = now()
    code = run(world.command("run", "--once"), world.env(), world.workdir / "once.log", 3600)
    wall = now() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    calls = world.sim.calls
    with (world.workdir / "calls.tsv").open("w") as out:  # kept with ROTATOR_BENCH_KEEP=1
        for c in calls:
            out.write(
                f"{c.started - started:.4f}\t{c.finished - started:.4f}\t{c.status}\t"
                f"{kind(c)}\t{c.path}\n"
            )
    engine = db.make_engine(world.database_url)
    try:
        runs = AuditLog(engine).runs(limit=100_000)
    finally:
        engine.dispose()
    ok = {RunStatus.SUCCEEDED, RunStatus.AWAITING_REVOKE}
    answered = [c for c in calls if c.status != 429]
    return BulkResult(
        keys=len(world.sim.accounts()),
        rotations=len(runs),
        failures=sum(1 for r in runs if r.status not in ok),
        wall=wall,
        cpu=cpu,
        window=max(c.finished for c in calls) - min(c.started for c in calls) if calls else 0.0,
        answered=len(answered),
        throttled=len(calls) - len(answered),
        by_kind=Counter(kind(c) for c in answered),
        exit_code=code,
        burst=max(1.0, rate),
        rate=rate,
    )


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--keys", type=int, default=500, help="subaccounts (default 500)")
    args.add_argument("--latency", type=float, default=0.02, help="seconds per call (0.02)")
    args.add_argument("--rate", type=float, default=50, help="Vonage calls/s limit (50)")
    args.add_argument("--parallel", type=int, default=32, help="rotation.max_parallel (32)")
    args.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args.add_argument("--runs", type=int, default=3, help="rotator runs, each from scratch (3)")
    args.add_argument("--no-baseline", action="store_true", help="skip the naive loop")
    args.add_argument(
        "--scenario",
        choices=("scheduled", "first"),
        default="scheduled",
        help="scheduled: Vault knows every key (default); first: subaccounts' first rotation",
    )
    opts = args.parse_args()

    config = {
        "vonage": {"max_calls_per_second": opts.rate},
        "rotation": {"max_parallel": opts.parallel},
    }
    results = []
    for _ in range(opts.runs):
        with stack(
            subaccounts=opts.keys,
            latency=opts.latency,
            rate_limit=opts.rate,
            database=opts.database,
            config=config,
        ) as world:
            if opts.scenario == "scheduled":
                world.seed_known()
            results.append(bulk(world, rate=opts.rate))
            if results[-1].exit_code != 0:
                print((world.workdir / "once.log").read_text()[-3000:], file=sys.stderr)

    print(
        f"## Bulk rotation: {opts.keys} subaccounts + primary {PRIMARY}, latency "
        f"{opts.latency * 1000:g} ms, limit {opts.rate:g} calls/s, max_parallel {opts.parallel}, "
        f"{opts.database}, {opts.scenario} rotations"
    )
    print()
    rows = [_row(f"rotator run --once #{n}", r) for n, r in enumerate(results, 1)]
    if len(results) > 1:
        rows.append(
            _row("rotator, median wall", sorted(results, key=lambda r: r.wall)[len(results) // 2])
        )
    if not opts.no_baseline:
        naive = naive_baseline.run_naive(opts.keys, latency=opts.latency, rate=opts.rate)
        answered = naive.calls - naive.throttled
        floor = max(0.0, answered - max(1.0, opts.rate)) / opts.rate
        floor3, floor4 = (
            max(0.0, n * naive.keys - max(1.0, opts.rate)) / opts.rate for n in (3, 4)
        )
        rows.append(
            [
                "naive httpx loop",
                naive.keys,
                naive.wall,
                naive.wall,
                floor,
                _percent(floor, naive.wall),
                _percent(floor3, naive.wall),
                floor4,
                _percent(floor4, naive.wall),
                answered,
                f"{answered / max(1, naive.keys):.2f}",
                naive.throttled,
                naive.failures,
                naive.cpu,
                f"{1000 * naive.cpu / max(1, naive.keys):.0f}",
                "-",
            ]
        )
    headers = (
        "tool",
        "rotations",
        "wall s",
        "Vonage window s",
        "floor s",
        "% of floor speed",
        "% of 3-call floor",
        "4-call floor s",
        "% of 4-call floor",
        "calls",
        "calls/rotation",
        "429s",
        "failures",
        "CPU s",
        "CPU ms/rotation",
        "exit",
    )
    print(table(headers, rows))
    print()
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(results[0].by_kind.items()))
    print(f"rotator's answered calls by kind (run #1): {kinds}")
    if not opts.no_baseline and results:
        best = min(r.wall for r in results)
        print(f"rotator vs the naive loop at equal limit: {naive.wall / best:.2f}x its speed")
    sys.exit(max(r.exit_code for r in results))


def _row(label: str, result: BulkResult) -> list[object]:
    return [
        label,
        result.rotations,
        result.wall,
        result.window,
        result.floor,
        _percent(result.floor, result.wall),
        _percent(result.floor_of(3), result.wall),
        result.floor_of(4),
        _percent(result.floor_of(4), result.wall),
        result.answered,
        f"{result.per_rotation:.2f}",
        result.throttled,
        result.failures,
        result.cpu,
        f"{1000 * result.cpu / max(1, result.rotations):.0f}",
        result.exit_code,
    ]


def _percent(floor: float, wall: float) -> str:
    return f"{100 * floor / wall:.1f} %" if wall > 0 else "-"


if __name__ == "__main__":
    main()
