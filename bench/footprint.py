"""Footprint of an idle ``rotator run`` managing many keys: startup time, memory, CPU per minute.

The simulator holds 10,000 subaccounts; the audit database is seeded so that every key was
rotated successfully a moment ago (one ``succeeded`` run per key), and the schedule is 30 days,
so nothing is due while we watch. The daemon discovers the keys, schedules one job per key, and
idles. Its housekeeping runs every 30 s: deferred revocations, and a re-read of the keys whose
audit history moved (every key, on the first pass and every 10 minutes). Measured from outside,
as an operator would: ``/proc/<pid>/status`` (VmRSS, VmHWM, Threads) and ``/proc/<pid>/stat``
(utime + stime): "startup" is spawn to the "daemon_started" log line (every job scheduled),
then ``--settle`` seconds (the first, full housekeeping pass: "CPU s while settling"), then the
idle window ("idle CPU s/min").

Started twice: a cold start (first start on this database: discovery records every key as
"added" in the audit log) and a warm restart (nothing new to record).

    .venv/bin/python -m bench.footprint                           # 10,000 keys, 60 s window
    .venv/bin/python -m bench.footprint --keys 5 --window 1 --settle 0 --no-restart   # smoke
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench._common import PRIMARY, Stack, parser, stack, sub_key, table
from rotator import db
from rotator.audit import RunStatus, Trigger
from rotator.models import RunRow

TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Sample:
    label: str
    keys: int
    startup: float  # spawn -> "daemon_started" logged (every job scheduled)
    startup_cpu: float
    rss_mib: float  # at the end of the idle window (or right after start when no window)
    peak_mib: float  # VmHWM: the high-water mark since spawn
    threads: int
    window: float
    settle_cpu: float | None  # CPU seconds in the settle period (the first housekeeping pass)
    cpu_per_minute: float | None
    stop: float  # SIGTERM -> exit
    exit_code: int


def seed_recent_success(world: Stack, keys: list[str]) -> None:
    """Migrate, then one succeeded run per key, started a minute ago: nothing is due for 30
    days. (Runs only: the audit events a real history would have are not needed to idle.)"""
    engine = db.make_engine(world.database_url)
    started = datetime.now(UTC) - timedelta(minutes=1)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "api_key": key,
            "trigger": Trigger.SCHEDULED.value,
            "reason": "footprint benchmark seed",
            "actor": "bench",
            "status": RunStatus.SUCCEEDED.value,
            "emergency": 0,
            "started_at": started,
            "finished_at": started + timedelta(seconds=1),
            "owner": "bench",
        }
        for key in keys
    ]
    try:
        db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(RunRow), rows)
    finally:
        engine.dispose()


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads) in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / TICKS  # fields 14 and 15 of proc(5)


def mib(value: str) -> float:
    return int(value.split()[0]) / 1024  # "123456 kB"


def started_event(log: Path) -> dict[str, Any] | None:
    for line in log.read_text(errors="replace").splitlines():
        if '"daemon_started"' in line:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item.get("event") == "daemon_started":
                return item
    return None


def measure(world: Stack, label: str, window: float, settle: float) -> Sample:
    log = world.workdir / f"daemon-{label.split()[0]}.log"
    with log.open("w") as out:
        spawned = time.time()
        proc = subprocess.Popen(
            world.command("run"), stdout=out, stderr=subprocess.STDOUT, env=world.env()
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (event := started_event(log)) is None:
            if proc.poll() is not None:
                raise SystemExit(f"rotator run exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"rotator run did not start within {START_TIMEOUT:g}s")
            time.sleep(0.05)
        logged = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        startup_cpu = cpu_seconds(proc.pid)
        per_minute = settle_cpu = None
        if window > 0:
            # Measurement periods themselves, not waits for a condition.
            time.sleep(settle)
            first = cpu_seconds(proc.pid)
            settle_cpu = first - startup_cpu
            began = time.monotonic()
            time.sleep(window)
            per_minute = (cpu_seconds(proc.pid) - first) / (time.monotonic() - began) * 60
        status = proc_status(proc.pid)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        stop = time.monotonic() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Sample(
        label=label,
        keys=int(event.get("keys", 0)),
        startup=logged - spawned,
        startup_cpu=startup_cpu,
        rss_mib=mib(status["VmRSS"]),
        peak_mib=mib(status["VmHWM"]),
        threads=int(status["Threads"]),
        window=window,
        settle_cpu=settle_cpu,
        cpu_per_minute=per_minute,
        stop=stop,
        exit_code=code,
    )


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--keys", type=int, default=10_000, help="subaccounts (default 10000)")
    args.add_argument("--window", type=float, default=60, help="idle seconds measured (60)")
    args.add_argument(
        "--settle",
        type=float,
        default=90,
        help="seconds after start before the window, for the first housekeeping pass, which "
        "re-reads every key (90)",
    )
    args.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args.add_argument("--no-restart", action="store_true", help="skip the warm restart")
    opts = args.parse_args()
    config = {
        "rotation": {"schedule": {"interval": "30d", "jitter": "1h"}},
        "accounts": {"discovery_interval": "1h"},
    }
    with stack(subaccounts=opts.keys, database=opts.database, config=config) as world:
        keys = [PRIMARY, *(sub_key(n) for n in range(1, opts.keys + 1))]
        seed_recent_success(world, keys)
        samples = [measure(world, "cold start", opts.window, opts.settle)]
        if not opts.no_restart:
            samples.append(measure(world, "warm restart", 0, 0))
        rotated = sum(1 for call in world.sim.calls if call.method == "POST")

    print(
        f"## Footprint: idle `rotator run` with {opts.keys} subaccounts + primary, "
        f"{opts.database}; idle window {opts.window:g} s, after {opts.settle:g} s to settle"
    )
    print()
    headers = (
        "start",
        "keys scheduled",
        "startup s",
        "startup CPU s",
        "RSS MiB",
        "peak RSS MiB",
        "threads",
        "CPU s while settling",
        "idle CPU s/min",
        "SIGTERM to exit s",
        "exit",
    )
    rows = [
        [
            s.label,
            s.keys,
            s.startup,
            s.startup_cpu,
            s.rss_mib,
            s.peak_mib,
            s.threads,
            "-" if s.settle_cpu is None else f"{s.settle_cpu:.2f}",
            "-" if s.cpu_per_minute is None else f"{s.cpu_per_minute:.2f}",
            s.stop,
            s.exit_code,
        ]
        for s in samples
    ]
    print(table(headers, rows))
    print()
    print(f"secrets created while idle: {rotated} (expected 0: nothing was due)")


if __name__ == "__main__":
    main()
