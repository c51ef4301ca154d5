"""Emergency latency: from ``rotator rotate KEY --emergency --reason x`` starting to the old
secret being revoked on Vonage, two ways: the CLI (a fresh interpreter per emergency) and the
running daemon's control API (``POST /v1/keys/KEY/rotate`` with ``{"emergency": true}`` and a
break-glass Vault token, no start-up at all).

The clock starts just before the command is spawned (so Python start-up, config, migrations
check, Vault login are included; rotator's modules are compiled to bytecode first, as an
installation has them: ``bench._common.compile_bytecode``) and stops when the simulator
finished answering the DELETE of the key's old secret (its call log is stamped with the same
monotonic clock). Measured with new secrets propagating at once and after 2 s
(``propagation_delay``): rotator must not promote a secret before it authenticates, so
propagation is waited out by polling get-balance. The database is migrated once before the
repetitions (``rotator db upgrade``), as any earlier command or the daemon has done where an
emergency happens: otherwise the first repetition alone would also time Alembic creating the
schema. Also shown: start → the new secret created (the POST answered: what start-up costs),
and the command's CPU time (user + system), which a busy machine inflates far less than wall
time.

For the daemon the clock starts just before the POST and stops when the simulator itself (its
Python API, polled every millisecond) no longer lists the old secret.

    .venv/bin/python -m bench.emergency_latency                   # 5 repetitions, 0 s and 2 s
    .venv/bin/python -m bench.emergency_latency --reps 1 --propagation 0
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

from bench._common import Stack, median, now, parser, run, stack, sub_key, table
from bench._daemon import CONTROL, Daemon, daemon, wait_for
from rotator.protocol import verify_schedule


@dataclass(frozen=True)
class Attempt:
    to_revoked: float | None  # command start -> DELETE of the old secret answered
    to_created: float | None  # command start -> POST of the new secret answered
    command: float  # command start -> exit
    cpu: float  # the command's user + system CPU seconds
    created_to_revoked: float | None  # POST answered -> DELETE answered
    balance_calls: int  # verification attempts (get-balance with the new secret)
    exit_code: int


def emergency(world: Stack, key: str, rep: int) -> Attempt:
    old = set(world.sim.secret_ids(key))
    world.sim.reset_calls()
    log = world.workdir / f"emergency-{rep}.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = now()
    code = run(
        world.command("rotate", key, "--emergency", "--reason", "bench: leaked secret"),
        world.env(),
        log,
        300,
    )
    command = now() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
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
        to_created=posts[0].finished - started if posts else None,
        command=command,
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        created_to_revoked=None if revoked is None or not posts else revoked - posts[0].finished,
        balance_calls=sum(1 for c in calls if c.path.endswith("/get-balance")),
        exit_code=code,
    )


def migrate(world: Stack) -> None:
    """``rotator db upgrade``: the schema an emergency finds wherever rotator already ran."""
    code = run(world.command("db", "upgrade"), world.env(), world.workdir / "migrate.log", 120)
    if code != 0:
        raise SystemExit(f"rotator db upgrade exited {code}: see {world.workdir / 'migrate.log'}")


IDLE_BETWEEN = 1.0  # seconds: the default limiter's burst / rate, refilled


@dataclass(frozen=True)
class ApiAttempt:
    to_gone: float | None  # POST sent -> the simulator no longer lists the old secret
    answered: float  # POST sent -> 202 received
    created_to_revoked: float | None
    balance_calls: int
    status: int


def emergency_via_daemon(world: Stack, running: Daemon, token: str, key: str) -> ApiAttempt:
    # An emergency finds an idle daemon's Vonage rate limiter full (burst = rate = 10 calls/s by
    # default); back to back, each repetition's 5 calls would drain it and the next would measure
    # the limiter's 0.1 s spacing instead. A fresh CLI process starts full too.
    time.sleep(IDLE_BETWEEN)
    old = set(world.sim.secret_ids(key))
    world.sim.reset_calls()
    started = now()
    answer = running.http.post(
        f"/v1/keys/{key}/rotate",
        headers={"X-Vault-Token": token},
        json={"reason": "bench: leaked secret", "emergency": True},
    )
    answered = now() - started
    gone = None
    if answer.status_code == 202:
        deadline = started + 60
        while now() < deadline:
            if not old & set(world.sim.secret_ids(key)):
                gone = now() - started
                break
            time.sleep(0.001)
        run_id = answer.json()["run_id"]
        wait_for(lambda: running.run_over(run_id), f"run {run_id} to end", 120)
    calls = world.sim.calls
    posts = [c for c in calls if c.method == "POST" and c.status is not None and c.status < 300]
    deletes = [
        c.finished
        for c in calls
        if c.method == "DELETE"
        and c.status is not None
        and c.status < 300
        and c.path.rsplit("/", 1)[-1] in old
    ]
    return ApiAttempt(
        to_gone=gone,
        answered=answered,
        created_to_revoked=max(deletes) - posts[0].finished if deletes and posts else None,
        balance_calls=sum(1 for c in calls if c.path.endswith("/get-balance")),
        status=answer.status_code,
    )


def daemon_rows(delays: list[float], reps: int, database: str, key: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for delay in delays:
        with (
            stack(
                subaccounts=1, propagation_delay=delay, database=database, config=CONTROL
            ) as world,
            daemon(world, key) as running,
        ):
            token = running.breakglass_token()
            attempts = [emergency_via_daemon(world, running, token, key) for _ in range(reps)]
        gone = [a.to_gone for a in attempts if a.to_gone is not None]
        tail = [a.created_to_revoked for a in attempts if a.created_to_revoked is not None]
        rows.append(
            [
                f"{delay:g}",
                len(attempts),
                *summary(gone),
                summary(tail)[1],
                summary([a.answered for a in attempts])[1],
                f"{sum(a.balance_calls for a in attempts) / len(attempts):.1f}",
                sum(1 for a in attempts if a.status != 202 or a.to_gone is None),
            ]
        )
    return rows


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
    args.add_argument(
        "--path",
        choices=("cli", "daemon"),
        action="append",
        help="measure the CLI or the running daemon's control API; repeatable (default: both)",
    )
    opts = args.parse_args()
    paths = opts.path or ["cli", "daemon"]
    delays = opts.propagation or [0.0, 2.0]
    key = sub_key(1)
    rows = []
    for delay in delays if "cli" in paths else []:
        with stack(subaccounts=1, propagation_delay=delay, database=opts.database) as world:
            migrate(world)
            attempts = [emergency(world, key, rep) for rep in range(opts.reps)]
        revoked = [a.to_revoked for a in attempts if a.to_revoked is not None]
        tail = [a.created_to_revoked for a in attempts if a.created_to_revoked is not None]
        created = [a.to_created for a in attempts if a.to_created is not None]
        rows.append(
            [
                f"{delay:g}",
                len(attempts),
                *summary(revoked),
                summary(created)[1],
                summary(tail)[1],
                summary([a.command for a in attempts])[1],
                summary([a.cpu for a in attempts])[1],
                f"{sum(a.balance_calls for a in attempts) / len(attempts):.1f}",
                sum(1 for a in attempts if a.exit_code != 0 or a.to_revoked is None),
            ]
        )
    headers = (
        "propagation s",
        "runs",
        "start→revoked min s",
        "median s",
        "max s",
        "start→created median s",
        "created→revoked median s",
        "command median s",
        "command CPU median s",
        "verify calls/run",
        "failures",
    )
    if rows:
        print(f"## Emergency latency: `rotator rotate {key} --emergency`, {opts.database}")
        print()
        print(table(headers, rows))
        print()
    if "daemon" in paths:
        print(
            f"## Emergency through the running daemon's control API: "
            f"`POST /v1/keys/{key}/rotate`, {opts.database}"
        )
        print()
        api_headers = (
            "propagation s",
            "runs",
            "POST→old secret gone min s",
            "median s",
            "max s",
            "created→revoked median s",
            "POST answered median s",
            "verify calls/run",
            "failures",
        )
        print(table(api_headers, daemon_rows(delays, opts.reps, opts.database, key)))
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
