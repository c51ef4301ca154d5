"""Emergency latency: from ``rotator rotate KEY --emergency --reason x`` starting to the old
secret being revoked on Vonage.

The clock starts just before the command is spawned (so Python start-up, config, migrations
check, Vault login are included) and stops when the simulator finished answering the DELETE of
the key's old secret (its call log is stamped with the same monotonic clock). Measured with new
secrets propagating at once and after 2 s (``propagation_delay``): rotator must not promote a
secret before it authenticates, so propagation is waited out by polling get-balance.

    .venv/bin/python -m bench.emergency_latency                   # 5 repetitions, 0 s and 2 s
    .venv/bin/python -m bench.emergency_latency --reps 1 --propagation 0
"""

from __future__ import annotations

from dataclasses import dataclass

from bench._common import Stack, median, now, parser, run, stack, sub_key, table
from rotator.protocol import verify_schedule


@dataclass(frozen=True)
class Attempt:
    to_revoked: float | None  # command start -> DELETE of the old secret answered
    command: float  # command start -> exit
    created_to_revoked: float | None  # POST answered -> DELETE answered
    balance_calls: int  # verification attempts (get-balance with the new secret)
    exit_code: int


def emergency(world: Stack, key: str, rep: int) -> Attempt:
    old = set(world.sim.secret_ids(key))
    world.sim.reset_calls()
    log = world.workdir / f"emergency-{rep}.log"
    started = now()
    code = run(
        world.command("rotate", key, "--emergency", "--reason", "bench: leaked secret"),
        world.env(),
        log,
        300,
    )
    command = now() - started
    calls = world.sim.calls
    deletes = [
        c
        for c in calls
        if c.method == "DELETE"
        and c.status is not None
        and c.status < 300
        and c.path.rsplit("/", 1)[-1] in old
    ]
    posts = [c for c in calls if c.method == "POST" and c.status is not None and c.status < 300]
    revoked = max(c.finished for c in deletes) if deletes else None
    return Attempt(
        to_revoked=None if revoked is None else revoked - started,
        command=command,
        created_to_revoked=None if revoked is None or not posts else revoked - posts[0].finished,
        balance_calls=sum(1 for c in calls if c.path.endswith("/get-balance")),
        exit_code=code,
    )


def summary(values: list[float]) -> tuple[str, str, str]:
    if not values:
        return "-", "-", "-"
    return f"{min(values):.3f}", f"{median(values):.3f}", f"{max(values):.3f}"


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--reps", type=int, default=5, help="repetitions per setting (5)")
    args.add_argument(
        "--propagation",
        type=float,
        action="append",
        help="propagation delay in seconds; repeatable (default: 0 and 2)",
    )
    args.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    opts = args.parse_args()
    delays = opts.propagation or [0.0, 2.0]
    key = sub_key(1)
    rows = []
    for delay in delays:
        with stack(subaccounts=1, propagation_delay=delay, database=opts.database) as world:
            attempts = [emergency(world, key, rep) for rep in range(opts.reps)]
        revoked = [a.to_revoked for a in attempts if a.to_revoked is not None]
        tail = [a.created_to_revoked for a in attempts if a.created_to_revoked is not None]
        rows.append(
            [
                f"{delay:g}",
                len(attempts),
                *summary(revoked),
                summary(tail)[1],
                summary([a.command for a in attempts])[1],
                f"{sum(a.balance_calls for a in attempts) / len(attempts):.1f}",
                sum(1 for a in attempts if a.exit_code != 0 or a.to_revoked is None),
            ]
        )
    print(f"## Emergency latency: `rotator rotate {key} --emergency`, {opts.database}")
    print()
    headers = (
        "propagation s",
        "runs",
        "start→revoked min s",
        "median s",
        "max s",
        "created→revoked median s",
        "command median s",
        "verify calls/run",
        "failures",
    )
    print(table(headers, rows))
    print()
    print("Verification's polling (`protocol.verify_wait`, verify_timeout 60 s): calls it costs")
    print()
    cost = []
    for delay in (0.0, 2.0, 30.0):
        times = verify_schedule(delay, timeout=60.0)
        cost.append([f"{delay:g}", len(times), f"{times[-1]:.2f}", f"{times[-1] - delay:.2f}"])
    print(table(("propagation s", "verify calls", "seen at s", "seen late by s"), cost))


if __name__ == "__main__":
    main()
