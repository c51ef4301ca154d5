"""``rotator demo``: rotator end to end on a machine where nothing is configured.

A throwaway OpenBao dev server, the Vonage simulator (a primary and three subaccounts) and a
SQLite audit log in a work directory; Vault is seeded with the primary's secret exactly as an
operator would do it, then every key is rotated once by the real engine, and the result is shown
the way an operator reads it: status, audit trail, hash-chain verification. Secret values are
never printed; the Vault token is handed over in a 0600 file, never on screen.

Everything started here is stopped by the ``ExitStack`` that started it, so Ctrl-C (or SIGTERM)
at any moment leaves no process behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import hvac
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rotator.audit import ChainReport, Run, Trigger
from rotator.config import Config, parse_config
from rotator.devtools.devserver import OpenBaoDevServer, free_port
from rotator.devtools.processes import stop_process
from rotator.devtools.simulator import DEFAULT_SEED, VonageSimulator
from rotator.devtools.simulator.seed import seed_kwargs
from rotator.devtools.stackconfig import merge, stack_config
from rotator.durations import format_duration
from rotator.errors import RotatorError
from rotator.inspection import account_keys, admin_credentials, observe
from rotator.rotation import Outcome
from rotator.services import Services, build

ACTOR: Final = "demo"
REASON: Final = "rotator demo"
DAEMON_START_TIMEOUT: Final = 60.0
DAEMON_STOP_TIMEOUT: Final = 60.0  # it finishes the rotations in flight first


@dataclass(frozen=True)
class DemoSetup:
    """What the demo started, and where it wrote things."""

    workdir: Path
    config_path: Path
    config: Config
    vault_url: str
    status_url: str


@dataclass(frozen=True)
class DemoResult:
    outcomes: list[Outcome]
    chain: ChainReport

    @property
    def ok(self) -> bool:
        return self.chain.ok and all(o.ok for o in self.outcomes)


Say = Callable[[str, str], None]  # (what, detail): one line of the set-up report


# -- setting up ------------------------------------------------------------------------------


@contextmanager
def workdir(path: Path | None) -> Iterator[Path]:
    """The given directory (kept afterwards), or a temporary one (removed afterwards)."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    temporary = Path(tempfile.mkdtemp(prefix="rotator-demo-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def start(
    stack: ExitStack, directory: Path, *, propagation_delay: float, interval: str, say: Say
) -> DemoSetup:
    """Start OpenBao and the simulator, seed Vault, write the config file."""
    bao_log = directory / "openbao.log"
    _write_private(bao_log, "")  # the dev server's banner shows its root token
    bao = OpenBaoDevServer(log_path=bao_log)
    stack.callback(bao.stop)  # registered first: Ctrl-C while it starts must stop it too
    bao.start()
    say("OpenBao dev server", f"{bao.url}  (in memory: gone when the demo ends)")
    sim = VonageSimulator(**seed_kwargs(DEFAULT_SEED), propagation_delay=propagation_delay)
    stack.callback(sim.stop)
    sim.start()
    subaccounts = [key for key in sim.accounts() if key != sim.primary_api_key]
    say(
        "Vonage simulator",
        f"{sim.api_url}  (primary {sim.primary_api_key}, subaccounts {', '.join(subaccounts)}; "
        f"new secrets take {propagation_delay:g}s to propagate)",
    )

    token_file = directory / "vault-token"
    _write_private(token_file, bao.root_token.reveal())
    stack.callback(token_file.unlink, missing_ok=True)

    data = demo_config(sim, bao.url, token_file, directory, interval=interval)
    config = parse_config(data, "demo config")
    seed_primary(bao, config, DEFAULT_SEED["primary"])
    say(
        "Vault seeded",
        f"{config.vault.mount}/{config.vault.path_prefix}/{sim.primary_api_key} holds the "
        "primary's secret, as an operator writes it before the first run",
    )
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    say("config and audit log", f"{config_path}  ({config.database.url})")
    return DemoSetup(
        workdir=directory,
        config_path=config_path,
        config=config,
        vault_url=bao.url,
        status_url=f"http://{config.http.listen}/status",
    )


def demo_config(
    sim: VonageSimulator, vault_url: str, token_file: Path, directory: Path, *, interval: str
) -> dict[str, Any]:
    """A config like an operator's: only the endpoints point at the local stand-ins."""
    base = stack_config(
        sim,
        vault_url=vault_url,
        vault_auth={"method": "token", "token_file": str(token_file)},
        database_url=f"sqlite:///{directory / 'rotator.db'}",
    )
    return merge(
        base,
        {
            "vonage": {"timeout": "5s", "max_calls_per_second": 50},
            "rotation": {
                "verify_timeout": "30s",
                "schedule": {"interval": interval, "jitter": "10s"},
            },
            "accounts": {"discover_subaccounts": True, "discovery_interval": "1m"},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "logging": {"format": "json", "level": "info"},
        },
    )


def seed_primary(bao: OpenBaoDevServer, config: Config, primary: Any) -> None:
    """``bao kv put secret/vonage/<primary> api_key=... api_secret=...``, done with hvac."""
    client = hvac.Client(url=bao.url, token=bao.root_token.reveal())
    try:
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{config.vault.path_prefix}/{primary['api_key']}",
            secret={"api_key": primary["api_key"], "api_secret": primary["secret"]},
            mount_point=config.vault.mount,
        )
    finally:
        client.adapter.close()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# -- rotating --------------------------------------------------------------------------------


def rotate_all(services: Services, console: Console) -> list[Outcome]:
    """Every key once, subaccounts first and the primary last (its secret signs the others)."""
    keys = account_keys(services)
    outcomes = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("rotating", total=len(keys))
        for key in keys:
            progress.update(task, description=f"rotating {key}")
            began = time.monotonic()
            outcome = services.rotator.rotate(
                key, trigger=Trigger.MANUAL, actor=ACTOR, reason=REASON
            )
            outcomes.append(outcome)
            progress.console.print(_outcome_line(outcome, time.monotonic() - began))
            console.file.flush()
            progress.advance(task)
    return outcomes


def _outcome_line(outcome: Outcome, seconds: float) -> str:
    run = outcome.run
    mark = "[green]rotated[/]" if outcome.ok else f"[red]{run.status.upper()}[/]"
    line = (
        f"  {mark}  {run.api_key:<10} {run.old_secret_id or '-'} -> {run.new_secret_id or '-'}"
        f"  ({seconds:.1f}s)"
    )
    return f"{line}\n    [red]{run.error}[/]" if run.error else line


# -- showing ---------------------------------------------------------------------------------


def status_table(services: Services) -> Table:
    """What ``rotator status`` shows, for the keys just rotated."""
    admin = admin_credentials(services)
    now = datetime.now(UTC)
    table = Table(title="Status", title_justify="left")
    for column in ("key", "role", "current secret id", "age", "secrets on Vonage", "last result"):
        table.add_column(column)
    for key in account_keys(services, admin):
        view = observe(services, key, admin=admin)
        current = view.current
        age = view.age(now)
        last = view.last_run
        result = str(last.status) if last else "never rotated"
        colour = "green" if last and last.status in {"succeeded", "awaiting_revoke"} else "red"
        table.add_row(
            key,
            "primary" if view.is_primary else "subaccount",
            current.id if current else "[red]unknown[/]",
            format_duration(age) if age is not None else "-",
            str(len(view.secrets)),
            f"[{colour}]{result}[/]",
        )
    return table


def audit_tables(services: Services, runs: list[Run]) -> list[Table]:
    """One table per run: every step the engine recorded, in order."""
    tables = []
    for run in runs:
        title = (
            f"run {run.id[:8]}  {run.api_key}  {run.trigger} by {run.actor} "
            f"({run.reason})  -> {run.status}"
        )
        table = Table(title=title, title_justify="left")
        for column in ("seq", "step", "outcome", "secret id", "vonage request id", "vault ver"):
            table.add_column(column)
        for event in services.audit.events(run_id=run.id):
            table.add_row(
                str(event.seq),
                event.step,
                event.outcome,
                event.secret_id or "",
                event.request_id or "",
                "" if event.vault_version is None else str(event.vault_version),
            )
        tables.append(table)
    return tables


def chain_line(report: ChainReport) -> str:
    if report.ok:
        return (
            f"[green]Audit chain verified[/]: {report.checked} events, every SHA-256 link "
            "intact (no row altered, deleted or reordered)"
        )
    return f"[red]Audit chain BROKEN[/] at row {report.first_bad_seq}: {report.problem}"


def show_results(services: Services, outcomes: list[Outcome], console: Console) -> DemoResult:
    console.print()
    console.print(status_table(services))
    console.print()
    console.rule("Audit trail (rotator audit show RUN_ID)")
    for table in audit_tables(services, [o.run for o in outcomes]):
        console.print(table)
    report = services.audit.verify_chain()
    console.print()
    console.print(chain_line(report))
    console.file.flush()
    return DemoResult(outcomes, report)


def run_rotations(setup: DemoSetup, console: Console) -> DemoResult:
    services = build(setup.config)
    try:
        keys = account_keys(services)
        console.print()
        console.print(
            f"[bold]Rotating {len(keys)} keys[/] (subaccounts first, the primary last): "
            "generate -> stage in Vault -> create on Vonage -> verify -> promote -> revoke old"
        )
        outcomes = rotate_all(services, console)
        return show_results(services, outcomes, console)
    finally:
        services.close()


# -- keep running ----------------------------------------------------------------------------


def start_daemon(stack: ExitStack, setup: DemoSetup) -> subprocess.Popen[bytes]:
    """``rotator --config <demo config> run`` in its own session; SIGTERM stops it cleanly."""
    log = stack.enter_context(open(setup.workdir / "daemon.log", "ab"))  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", "--config", str(setup.config_path), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack.callback(stop_process, process, DAEMON_STOP_TIMEOUT)
    wait_healthy(process, setup.status_url.replace("/status", "/healthz"))
    return process


def wait_healthy(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + DAEMON_START_TIMEOUT
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DemoError(f"`rotator run` exited with status {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise DemoError(f"`rotator run` did not answer {url} within {DAEMON_START_TIMEOUT:.0f}s")


def watch_daemon(process: subprocess.Popen[bytes]) -> None:
    """Block until Ctrl-C (``KeyboardInterrupt``), or fail if the daemon dies on its own."""
    while process.poll() is None:
        time.sleep(0.5)
    raise DemoError(f"`rotator run` exited with status {process.returncode}")


class DemoError(RotatorError):
    hint = "see daemon.log in the demo's work directory (run with --workdir DIR to keep it)"


__all__ = [
    "DemoError",
    "DemoResult",
    "DemoSetup",
    "run_rotations",
    "start",
    "start_daemon",
    "watch_daemon",
    "workdir",
]
