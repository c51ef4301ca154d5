"""The chaos harness: rotations of many keys under injected faults, recovery, then the promises.

One run:

1. chaos — arm the plan's Vonage faults on the simulator, start ``rotator rotate KEY`` for every
   key as a real process (``tests.chaos.spawn``: forked from a warm zygote, or ``python -m
   rotator``); they wait together at their first step so the timeline starts at one moment. Then
   strike at moments on that timeline or when a victim reaches a step boundary: seal, kill or
   503 Vault, revoke rotator's token, stop PostgreSQL, SIGKILL rotators; some mended mid-run.
2. restore — clear every fault, mend every service, give rotator a valid token; check the promises
   that hold at *any* quiet moment (nobody locked out, nothing lost, at most two secrets).
3. recovery — ``rotator rotate KEY`` again for every key until it succeeds (bounded attempts).
4. check — every promise (``tests.chaos.invariants``), including that every run ended and the
   audit hash chain verifies.

Everything listens on 127.0.0.1 and everything started here is stopped in ``close()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from rotator import db
from rotator.audit import AuditLog, Run, RunStatus
from rotator.devtools.simulator import Fault, VonageSimulator
from rotator.devtools.stackconfig import merge, stack_config
from tests.chaos.invariants import MOUNT, PATH_PREFIX, STATE_PREFIX, key_violations, violations
from tests.chaos.plan import KINDS, SYNC_BOUNDARY, Planner, RunPlan, Strike
from tests.chaos.servers import OpenBaoServer, PostgresCluster, ServerError, VaultProxy
from tests.chaos.spawn import Process, Spawner

PRIMARY = "abcd1234"
PRIMARY_SECRET = "Primary1Secret"  # the simulator's seed: known to tests only
PHASE_TIMEOUT = 120.0  # seconds a chaos phase may take beyond verify_timeout
SYNC_TIMEOUT = 90.0  # seconds for every rotator to come up and reach the start barrier
PROCESS_TIMEOUT = 180.0  # seconds for one recovery `rotator rotate`
LEASE_TTL = 60.0
# A killed rotator's lease is taken over at once when its pid is gone; if the pid was reused
# meanwhile (pid_max can be as low as 32768), recovery waits the lease out, as an operator would.
RECOVERY_LOCK_WAIT = LEASE_TTL + 10


def subaccounts(count: int) -> dict[str, str]:
    return {f"chaos{n:03d}": f"Chaos{n:03d}Secret" for n in range(1, count + 1)}


@dataclass
class Stats:
    """What the harness did and saw, summed over runs; ``table()`` prints it."""

    keys: int = 0
    seed: int = 0
    runs: int = 0
    attempts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[str] = field(default_factory=Counter)
    armed: Counter[str] = field(default_factory=Counter)  # kind -> runs it was planned in
    injected: Counter[str] = field(default_factory=Counter)  # kind -> times it took effect
    kills: Counter[str] = field(default_factory=Counter)  # "boundary" / "moment"
    failed_then_recovered: int = 0
    recovery_attempts: int = 0
    recovery_max: int = 0
    overran: int = 0
    violations: list[str] = field(default_factory=list)
    wall: float = 0.0

    def table(self) -> str:
        rows: list[tuple[str, str]] = [
            ("runs", f"{self.runs}  ({self.keys} keys each, seed {self.seed})"),
            ("rotation attempts under chaos", str(self.attempts)),
        ]
        labels = [
            ("succeeded", "  succeeded"),
            ("rolled_back", "  rolled back"),
            ("failed", "  failed (nothing changed)"),
            ("resumed:succeeded", "  interrupted -> finished by recovery"),
            ("resumed:rolled_back", "  interrupted -> rolled back by recovery"),
            ("resumed:failed", "  interrupted -> failed on resume"),
            ("no_run", "  died before recording a run"),
        ]
        rows += [(label, str(self.outcomes[key])) for key, label in labels]
        rows.append(
            ("  exit codes", ", ".join(f"{k}: {v}" for k, v in sorted(self.exit_codes.items())))
        )
        rows.append(("keys failed, then recovered", str(self.failed_then_recovered)))
        rows.append(
            (
                "recovery `rotate` runs",
                f"{self.recovery_attempts}  (most for one key: {self.recovery_max})",
            )
        )
        kills = sum(self.kills.values())
        rows.append(
            (
                "SIGKILLs",
                f"{kills}  (at a step boundary {self.kills['boundary']}, "
                f"at a random moment {self.kills['moment']})",
            )
        )
        rows.append(("faults by kind", "runs armed / times injected"))
        for kind in KINDS:
            unit = _UNITS.get(kind, "")
            rows.append((f"  {kind}", f"{self.armed[kind]} / {self.injected[kind]}{unit}"))
        rows.append(("phases overran (killed at deadline)", str(self.overran)))
        rows.append(("invariant violations", str(len(self.violations))))
        rows.append(("wall time", f"{self.wall:.1f} s"))
        width = max(len(label) for label, _ in rows) + 2
        lines = [f"{label:<{width}}{value}" for label, value in rows]
        rule = "-" * max(len(line) for line in lines)
        return "\n".join([rule, *lines, rule])


_UNITS = {
    "vonage_5xx": " calls",
    "vonage_429": " calls",
    "vonage_timeout": " calls",
    "vonage_reset_before_apply": " calls",
    "vonage_reset_after_apply": " calls",
    "vonage_propagation": " new secrets",
    "sigkill": " kills",
}


class Rotation:
    """One ``rotator rotate KEY --json`` process; optionally pausing at step boundaries."""

    def __init__(self, key: str, process: Process, marker: Path | None, stderr: Path) -> None:
        self.key = key
        self.process = process
        self.marker = marker
        self.stderr = stderr

    @property
    def alive(self) -> bool:
        return self.process.alive

    def at(self) -> str | None:
        """The boundary it is paused at, if any."""
        if self.marker is None:
            return None
        try:
            return self.marker.read_text().strip() or None
        except OSError:
            return None

    def release(self) -> None:
        if self.marker is not None:
            self.marker.unlink(missing_ok=True)

    def kill(self) -> bool:
        """SIGKILL; True if that is what ended it."""
        return self.process.kill()

    def wait(self, timeout: float) -> int | None:
        """Its exit code; SIGKILLed (and None) if it has not ended within ``timeout``."""
        code = self.process.wait(timeout)
        if code is None:
            self.kill()
        return code

    def exit_label(self) -> str:
        code = self.process.returncode
        return "SIGKILL" if code == -signal.SIGKILL else str(code)

    def stderr_tail(self, lines: int = 6) -> str:
        try:
            text = self.stderr.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class ChaosHarness:
    """Owns the servers (simulator, OpenBao, proxy, PostgreSQL) and runs chaos runs over them."""

    def __init__(
        self,
        workdir: Path,
        *,
        keys: int = 8,
        seed: int = 1,
        max_propagation: float = 30.0,
        max_kinds: int = 3,
        kinds_per_run: int | None = None,
        singles: int = 0,
        kinds: tuple[str, ...] = KINDS,
        recovery_attempts: int = 5,
        keep_logs: bool = False,
        spawn: str = "fork",
        say: Callable[[str], None] = print,
    ) -> None:
        if keys < 1:
            raise ValueError("keys must be >= 1 (the primary)")
        self.workdir = workdir
        self.subs = subaccounts(keys - 1)
        self.keys = [PRIMARY, *self.subs]
        self.seed = seed
        self.planner = Planner(
            seed,
            self.keys,
            max_propagation=max_propagation,
            max_kinds=max_kinds,
            kinds_per_run=kinds_per_run,
            singles=singles,
            kinds=kinds,
        )
        self.recovery_verify_timeout = max_propagation * 1.5 + 10
        self.recovery_attempts = recovery_attempts
        self.keep_logs = keep_logs
        self.spawn = spawn
        self.say = say
        self.stats = Stats(keys=len(self.keys), seed=seed)
        self._closers: list[Callable[[], None]] = []
        self._live: list[Rotation] = []
        self._token_revoked = False
        self._pg_up = False
        self._log = workdir / "chaos.log"
        self.progress: Callable[[str], None] | None = None  # one line per run, if set

    # -- servers -----------------------------------------------------------------------------

    def __enter__(self) -> ChaosHarness:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spawner = Spawner(self.spawn)
        self._closers.append(self.spawner.close)
        self.sim = VonageSimulator(
            primary_api_key=PRIMARY,
            primary_secret=PRIMARY_SECRET,
            subaccounts=[
                {"api_key": key, "secret": secret, "name": f"Chaos {key[-3:]}"}
                for key, secret in self.subs.items()
            ],
            seed=self.seed,
        ).start()
        self._closers.append(self.sim.stop)
        (self.workdir / "bao").mkdir(exist_ok=True)
        self.bao = OpenBaoServer(self.workdir / "bao")
        self._closers.append(self.bao.close)
        self.bao.start()
        self.proxy = VaultProxy(self.bao.port).start()
        self._closers.append(self.proxy.close)
        self.pg = PostgresCluster()
        self._closers.append(self.pg.close)
        self.pg.start()
        self._pg_up = True
        self.engine = db.make_engine(self.pg.url)
        self._closers.append(self.engine.dispose)
        db.upgrade(self.engine)
        self.audit = AuditLog(self.engine)
        self.vault = self.bao.admin()
        for key in self.keys:
            secret = self.sim.secrets(key)[0]
            self.vault.secrets.kv.v2.create_or_update_secret(
                path=f"{PATH_PREFIX}/{key}",
                secret={"api_key": key, "api_secret": secret.value, "secret_id": secret.id},
                mount_point=MOUNT,
            )
        found = [v for key in self.keys for v in key_violations(self.sim, self.vault, key)]
        if found:
            raise ServerError(f"the seeded world already breaks a promise: {found}")

    def close(self) -> None:
        for rotation in self._live:
            with contextlib.suppress(Exception):
                rotation.kill()
        self._live.clear()
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()

    # -- runs --------------------------------------------------------------------------------

    def run(self, runs: int, *, time_budget: float | None = None) -> Stats:
        """``runs`` chaos runs (fewer if ``time_budget`` seconds pass first)."""
        started = time.monotonic()
        try:
            for number in range(1, runs + 1):
                if time_budget is not None and time.monotonic() - started > time_budget:
                    self.say(f"time budget of {time_budget:g}s spent after {number - 1} runs")
                    break
                self.run_once(self.planner.next(number))
        finally:
            self.stats.wall += time.monotonic() - started
        return self.stats

    def run_once(self, plan: RunPlan) -> list[str]:
        """One chaos run: chaos phase, restore, recovery, check. Returns its violations."""
        logdir = self.workdir / "runs" / f"{plan.number:05d}"
        logdir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        self._note(plan.describe())
        for kind in plan.kinds:
            self.stats.armed[kind] += 1
        since = datetime.now(UTC)
        rotations = self._chaos(plan, logdir)
        chaos_done = time.monotonic()
        self._restore()
        found = [f"after chaos, before recovery: {v}" for v in self._quiet_violations()]
        chaos_runs = self._runs_of(f"chaos-{plan.number}", since)
        first = {run.api_key: run.status for run in chaos_runs}
        recovering = time.monotonic()
        found += self._recover(plan, logdir)
        recovered = time.monotonic()
        found += violations(self.sim, self.vault, self.keys, self.audit)
        self._tally(plan, rotations, chaos_runs, first, since)
        self.stats.runs += 1
        outcome = ", ".join(
            f"{r.key}={first.get(r.key, 'no-run')}/{r.exit_label()}" for r in rotations
        )
        elapsed = time.monotonic() - began
        self._note(
            f"run {plan.number} done in {elapsed:.1f}s (chaos {chaos_done - began:.1f}s, "
            f"restore {recovering - chaos_done:.1f}s, recovery {recovered - recovering:.1f}s): "
            f"{outcome}"
        )
        if self.progress is not None:
            mark = "VIOLATED" if found else "ok"
            self.progress(f"run {plan.number:4d} {elapsed:6.1f}s {mark:8} {'+'.join(plan.kinds)}")
        if found:
            self.stats.violations += [f"run {plan.number}: {v}" for v in found]
            self.say(f"VIOLATIONS in {plan.describe()}")
            for line in found:
                self.say(f"  {line}")
            self.say(f"  logs: {logdir}")
        elif not self.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        return found

    # -- phase 1: chaos ----------------------------------------------------------------------

    def _chaos(self, plan: RunPlan, logdir: Path) -> list[Rotation]:
        """Arm the Vonage faults, start a rotation per key, play the timeline, count the hits."""
        sim = self.sim
        sim.reset_calls()
        sim.latency = plan.latency
        sim.propagation_delay = plan.propagation
        sim.rate_limit = plan.rate_limit
        armed: list[tuple[str, Fault]] = [(k, sim.inject(f)) for k, f in plan.sim_faults]
        config = self._write_config(
            logdir / "config.yaml",
            vonage_timeout=plan.vonage_timeout,
            verify_timeout=plan.verify_timeout,
            vault_url=self.proxy.url if plan.through_proxy else self.bao.url,
        )
        by_victim = {s.victim: s for s in plan.strikes if s.boundary and s.victim}
        rotations: dict[str, Rotation] = {}
        for key in plan.keys:
            pause = [SYNC_BOUNDARY] if plan.sync else []
            if key in by_victim:
                pause.append(by_victim[key].boundary or "")
            rotations[key] = self._start(
                key, config, logdir, actor=f"chaos-{plan.number}", name="chaos", pause=pause
            )
        self.stats.attempts += len(rotations)
        try:
            self._timeline(plan, rotations, by_victim)
        finally:
            for r in rotations.values():
                r.kill()
                self._live.remove(r)
        self._count_vonage_faults(plan, armed)
        return list(rotations.values())

    def _timeline(
        self, plan: RunPlan, rotations: dict[str, Rotation], by_victim: dict[str, Strike]
    ) -> None:
        """Until every rotation has ended (or the deadline): let them start together, strike
        victims at their boundaries and the rest at their moments, heal what heals mid-run."""
        timed = sorted((s for s in plan.strikes if s.at is not None), key=lambda s: s.at or 0)
        heals: list[tuple[float, str]] = []
        struck: set[str] = set()
        launched = time.monotonic()
        t0 = None if plan.sync else launched
        deadline = launched + PHASE_TIMEOUT + plan.verify_timeout
        while True:
            now = time.monotonic()
            live = [r for r in rotations.values() if r.alive]
            if not live:
                return
            if now > deadline:
                self.stats.overran += 1
                self._note(f"run {plan.number}: phase deadline passed; killing the rest")
                return
            if t0 is None:
                waiting = [r for r in live if r.at() == SYNC_BOUNDARY]
                if len(waiting) == len(live) or now > launched + SYNC_TIMEOUT:
                    t0 = now
                    self._note(f"  start barrier passed after {now - launched:.1f}s")
                    for r in waiting:
                        r.release()
            else:
                for r in live:
                    at = r.at()
                    if at == SYNC_BOUNDARY:  # came up after the barrier's deadline
                        r.release()
                    strike = by_victim.get(r.key)
                    if strike and r.key not in struck and at == strike.boundary:
                        struck.add(r.key)
                        self._strike(strike, rotations, heals, kind_of_kill="boundary")
                        r.release()
                for key, strike in by_victim.items():
                    if key not in struck and not rotations[key].alive:
                        # The victim ended before its boundary (another fault stopped it):
                        # strike the others now rather than not at all.
                        struck.add(key)
                        if strike.kind == "sigkill":
                            strike = Strike(kind="sigkill", victim=live[0].key)
                        self._strike(strike, rotations, heals, kind_of_kill="moment")
                while timed and now >= t0 + (timed[0].at or 0):
                    self._strike(timed.pop(0), rotations, heals, kind_of_kill="moment")
                for heal in [h for h in heals if now >= h[0]]:
                    heals.remove(heal)
                    self._heal(heal[1])
            time.sleep(0.02)

    def _count_vonage_faults(self, plan: RunPlan, armed: list[tuple[str, Fault]]) -> None:
        for kind, fault in armed:
            self.stats.injected[kind] += self.sim.fault_hits(fault)
        calls = self.sim.calls
        if plan.rate_limit is not None:
            self.stats.injected["vonage_429"] += sum(
                1 for c in calls if c.status == 429 and c.fault is None
            )
        if plan.propagation > 0:
            self.stats.injected["vonage_propagation"] += sum(
                1
                for c in calls
                if c.method == "POST" and c.path.endswith("/secrets") and c.status == 201
            )

    def _strike(
        self,
        strike: Strike,
        rotations: dict[str, Rotation],
        heals: list[tuple[float, str]],
        *,
        kind_of_kill: str,
    ) -> None:
        anyone = any(r.alive for r in rotations.values())
        if strike.kind == "sigkill":
            victim = rotations.get(strike.victim or "")
            if victim is not None and victim.kill():
                self.stats.kills[kind_of_kill] += 1
                self.stats.injected["sigkill"] += 1
            return
        try:
            self._apply(strike)
        except (ServerError, httpx.HTTPError, OSError, subprocess.SubprocessError) as exc:
            self._note(f"  {strike.kind} not applied: {exc}")
            return
        if anyone:
            self.stats.injected[strike.kind] += 1
        if strike.heal_after is not None:
            heals.append((time.monotonic() + strike.heal_after, strike.kind))

    def _apply(self, strike: Strike) -> None:
        kind = strike.kind
        if kind == "vault_sealed":
            self.bao.seal()
        elif kind == "vault_down":
            self.bao.kill()
        elif kind == "vault_403":
            self.bao.revoke_token()
            self._token_revoked = True
        elif kind == "vault_5xx":
            self.proxy.failing = strike.mode or "before_apply"
        elif kind == "db_down":
            self._pg_up = False
            self.pg.stop(strike.mode or "immediate")
        else:
            raise ValueError(f"unknown strike {kind!r}")

    def _heal(self, kind: str) -> None:
        try:
            if kind in ("vault_sealed", "vault_down"):
                self._mend_vault()
            elif kind == "vault_5xx":
                self.proxy.failing = None
            elif kind == "db_down" and not self._pg_up:
                self.pg.start()
                self._pg_up = True
        except (ServerError, httpx.HTTPError, OSError, subprocess.SubprocessError) as exc:
            self._note(f"  healing {kind} failed (retried at restore): {exc}")

    def _mend_vault(self) -> None:
        if not self.bao.running:
            self.bao.restart()
        elif self.bao.sealed():
            self.bao.unseal()

    # -- phase 2: restore --------------------------------------------------------------------

    def _restore(self) -> None:
        """Every fault cleared, every service back, a valid token for rotator."""
        sim = self.sim
        sim.clear_faults()
        sim.rate_limit = None
        sim.latency = 0.0
        sim.propagation_delay = 0.0
        self.proxy.failing = None
        self._mend_vault()
        if self._token_revoked:
            self.bao.new_token()
            self._token_revoked = False
        if not self._pg_up:
            self.pg.start()
            self._pg_up = True

    def _quiet_violations(self) -> list[str]:
        """What must hold whenever no rotation is running, even right after a crash."""
        return [v for key in self.keys for v in key_violations(self.sim, self.vault, key)]

    # -- phase 3: recovery -------------------------------------------------------------------

    def _recover(self, plan: RunPlan, logdir: Path) -> list[str]:
        config = self._write_config(
            logdir / "recovery.yaml",
            vonage_timeout=2.0,
            verify_timeout=self.recovery_verify_timeout,
            vault_url=self.bao.url,
        )
        pending = list(self.keys)
        tries: Counter[str] = Counter()
        last: dict[str, Rotation] = {}
        for attempt in range(1, self.recovery_attempts + 1):
            started = {
                key: self._start(
                    key,
                    config,
                    logdir,
                    actor=f"recovery-{plan.number}",
                    name=f"recovery{attempt}",
                    wait=RECOVERY_LOCK_WAIT,
                )
                for key in pending
            }
            for rotation in started.values():
                rotation.wait(PROCESS_TIMEOUT)
                self._live.remove(rotation)
                tries[rotation.key] += 1
                last[rotation.key] = rotation
            pending = [key for key, r in started.items() if r.process.returncode != 0]
            if not pending:
                break
        self.stats.recovery_attempts += sum(tries.values())
        self.stats.recovery_max = max(self.stats.recovery_max, *tries.values())
        return [
            f"{key}: not recovered after {tries[key]} `rotator rotate` runs "
            f"(exit {last[key].exit_label()}: {last[key].stderr_tail()})"
            for key in pending
        ]

    # -- bookkeeping -------------------------------------------------------------------------

    def _runs_of(self, actor: str, since: datetime) -> list[Run]:
        return [r for r in self.audit.runs(since=since) if r.actor == actor]

    def _tally(
        self,
        plan: RunPlan,
        rotations: list[Rotation],
        chaos_runs: list[Run],
        first: dict[str, RunStatus],
        since: datetime,
    ) -> None:
        final = {r.id: r.status for r in self._runs_of(f"chaos-{plan.number}", since)}
        for run in chaos_runs:
            if run.status == RunStatus.RUNNING:
                self.stats.outcomes[f"resumed:{final.get(run.id, 'unknown')}"] += 1
            else:
                self.stats.outcomes[str(run.status)] += 1
        for rotation in rotations:
            self.stats.exit_codes[rotation.exit_label()] += 1
            if rotation.key not in first:
                self.stats.outcomes["no_run"] += 1
            if first.get(rotation.key) != RunStatus.SUCCEEDED:
                self.stats.failed_then_recovered += 1

    def _start(
        self,
        key: str,
        config: Path,
        logdir: Path,
        *,
        actor: str,
        name: str,
        pause: list[str] | None = None,
        wait: float | None = None,
    ) -> Rotation:
        """``rotator --config CONFIG rotate KEY --json [--wait S]`` as a new process."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ROTATOR_TEST_PAUSE", "VAULT_", "BAO_"))
        }
        env["ROTATOR_ACTOR"] = actor
        marker = None
        if pause:
            marker = logdir / f"pause-{key}"
            env["ROTATOR_TEST_PAUSE_AT"] = ",".join(pause)
            env["ROTATOR_TEST_PAUSE_FILE"] = str(marker)
        stderr = logdir / f"{name}-{key}.log"
        process = self.spawner.start(
            ["--config", str(config), "rotate", key, "--json"]
            + ([f"--wait={wait:g}"] if wait is not None else []),
            env,
            logdir / f"{name}-{key}.out",
            stderr,
        )
        rotation = Rotation(key, process, marker, stderr)
        self._live.append(rotation)
        return rotation

    def _write_config(
        self, path: Path, *, vonage_timeout: float, verify_timeout: float, vault_url: str
    ) -> Path:
        base = stack_config(
            self.sim,
            vault_url=vault_url,
            vault_auth={"method": "token", "token_file": str(self.bao.token_file)},
            database_url=self.pg.url,
            path_prefix=PATH_PREFIX,
            state_prefix=STATE_PREFIX,
            mount=MOUNT,
        )
        data = merge(
            base,
            {
                "vonage": {"timeout": f"{vonage_timeout}s", "max_calls_per_second": 200},
                "vault": {"timeout": "3s"},
                "rotation": {
                    "verify_timeout": f"{verify_timeout}s",
                    "grace_period": "0s",
                    "lease_ttl": f"{LEASE_TTL:g}s",
                },
                "logging": {"format": "json", "level": "info"},
            },
        )
        path.write_text(yaml.safe_dump(data))
        return path

    def _note(self, line: str) -> None:
        with self._log.open("a") as log:
            log.write(f"{datetime.now(UTC):%H:%M:%S} {line}\n")
