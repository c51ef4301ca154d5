"""What every benchmark sets up: the Vonage simulator (the only stand-in), a real OpenBao dev
server, a real database (SQLite file or a fresh PostgreSQL database), a config file written as an
operator would, and ``rotator`` run as a subprocess exactly as a user runs it.

Numbers are printed, never asserted: a benchmark reports, a test checks behaviour.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import yaml

from rotator.devtools.devserver import OpenBaoDevServer, free_port
from rotator.devtools.postgres import throwaway_database
from rotator.devtools.simulator import VonageSimulator
from rotator.devtools.stackconfig import merge, stack_config

PRIMARY = "abcd1234"
PRIMARY_SECRET = "Primary1Secret"  # the simulator's seeded secret, known to the bench only
TOKEN_ENV = "ROTATOR_BENCH_VAULT_TOKEN"
SOURCE_ENV = "ROTATOR_BENCH_SOURCE"  # set it to run rotator without compiling its bytecode first
KEEP_ENV = "ROTATOR_BENCH_KEEP"  # set it to keep the work directory (logs, database) for a look
PG_ADMIN_DSN = os.environ.get("ROTATOR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parent.parent


def sub_key(n: int) -> str:
    return f"sub{n:05d}"


def sub_secret(n: int) -> str:
    return f"Sub{n}Secret{n:05d}x"


@dataclass
class Stack:
    """One benchmark's world. ``data`` is the config; ``config_file()`` writes it."""

    sim: VonageSimulator
    bao: OpenBaoDevServer
    workdir: Path
    database_url: str
    data: dict[str, Any]

    def config_file(self) -> Path:
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.data, sort_keys=False))
        return path

    def env(self) -> dict[str, str]:
        return {**os.environ, TOKEN_ENV: self.bao.root_token.reveal()}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rotator", "--config", str(self.config_file()), *args]

    def vault_client(self) -> hvac.Client:
        return hvac.Client(url=self.bao.url, token=self.bao.root_token.reveal())

    def seed_primary(self) -> None:
        """``bao kv put secret/vonage/<primary> api_key=... api_secret=...`` (no id, as the
        README's first-run step writes it)."""
        client = self.vault_client()
        try:
            client.secrets.kv.v2.create_or_update_secret(
                path=f"{self.data['vault']['path_prefix']}/{PRIMARY}",
                secret={"api_key": PRIMARY, "api_secret": PRIMARY_SECRET},
                mount_point="secret",
            )
        finally:
            client.adapter.close()

    def seed_known(self) -> None:
        """Every key's record as a previous rotation leaves it: its current secret with its id
        and nothing pending or kept, so a scheduled rotation can create first (3 calls)."""
        client = self.vault_client()
        try:
            for key in self.sim.accounts():
                [secret] = self.sim.secrets(key)
                client.secrets.kv.v2.create_or_update_secret(
                    path=f"{self.data['vault']['path_prefix']}/{key}",
                    secret={"api_key": key, "api_secret": secret.value, "secret_id": secret.id},
                    mount_point="secret",
                )
        finally:
            client.adapter.close()


def compile_bytecode() -> None:
    """Compile the ``rotator`` package the benchmarks run to bytecode, as ``pip install`` and
    deploy/Dockerfile (``compileall``) do for an installation. A checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` (set on the bench machine) would otherwise compile ~60 modules
    from source at every start, which no installed rotator does (bench/RESULTS.md, issue 12:
    tens of milliseconds of every command's start-up). ``ROTATOR_BENCH_SOURCE=1`` skips it, to
    measure a checkout as it is."""
    if os.environ.get(SOURCE_ENV):
        return
    import rotator

    compileall.compile_dir(Path(rotator.__file__).parent, quiet=1)


@contextmanager
def stack(
    *,
    subaccounts: int,
    latency: float = 0.0,
    rate_limit: float | None = None,
    propagation_delay: float = 0.0,
    database: str = "sqlite",
    config: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """Start everything; stop everything (and drop the database) on the way out."""
    compile_bytecode()
    with ExitStack() as stop:
        workdir = Path(tempfile.mkdtemp(prefix="rotator-bench-"))
        if os.environ.get(KEEP_ENV):
            print(f"(keeping {workdir}: {KEEP_ENV} is set)", file=sys.stderr)
        else:
            stop.callback(shutil.rmtree, workdir, ignore_errors=True)
        bao = OpenBaoDevServer(log_path=workdir / "openbao.log")
        stop.callback(bao.stop)
        bao.start()
        sim = VonageSimulator(
            primary_api_key=PRIMARY,
            primary_secret=PRIMARY_SECRET,
            propagation_delay=propagation_delay,
            latency=latency,
            rate_limit=rate_limit,
        )
        for n in range(1, subaccounts + 1):
            sim.add_subaccount(sub_key(n), sub_secret(n), name=f"Team {n}")
        stop.callback(sim.stop)
        sim.start()
        database_url = (
            f"sqlite:///{workdir / 'rotator.db'}"
            if database == "sqlite"
            else stop.enter_context(throwaway_database(PG_ADMIN_DSN, prefix="rotator_bench_"))
        )
        data = merge(base_config(sim, bao, database_url), config or {})
        world = Stack(sim=sim, bao=bao, workdir=workdir, database_url=database_url, data=data)
        world.seed_primary()
        yield world


def base_config(sim: VonageSimulator, bao: OpenBaoDevServer, database_url: str) -> dict[str, Any]:
    base = stack_config(
        sim,
        vault_url=bao.url,
        vault_auth={"method": "token", "token_env": TOKEN_ENV},
        database_url=database_url,
    )
    return merge(
        base,
        {
            "vonage": {"timeout": "10s"},
            "rotation": {"verify_timeout": "60s"},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "logging": {"format": "json", "level": "info"},
        },
    )


# -- reporting ------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table, so output pastes straight into RESULTS.md."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    return "\n".join([line, rule, *body])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def machine() -> str:
    """One paragraph about where the numbers came from."""
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- cpus: {os.cpu_count()}, memory: {memory}\n"
        f"- python: {platform.python_version()} ({sys.executable})\n"
        f"- uname: {' '.join(platform.uname())}\n"
        f"- load average (1/5/15 min) at start: {load}"
    )


def parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def now() -> float:
    """The clock the simulator stamps its call log with (``time.monotonic``, system-wide)."""
    return time.monotonic()


def run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    with log.open("w") as out:
        return subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False
        ).returncode


__all__ = [
    "PRIMARY",
    "REPO",
    "Stack",
    "compile_bytecode",
    "machine",
    "median",
    "now",
    "parser",
    "run",
    "stack",
    "sub_key",
    "table",
]
