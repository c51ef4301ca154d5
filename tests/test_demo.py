"""`rotator demo`, run as a newcomer runs it: a subprocess, with nothing configured beforehand."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import hvac
import pytest

from rotator.audit import AuditLog, RunStatus
from rotator.config import load_config
from rotator.db import make_engine
from rotator.devtools.simulator import DEFAULT_SEED

pytestmark = pytest.mark.slow

PRIMARY = DEFAULT_SEED["primary"]["api_key"]
SUBACCOUNTS = [sub["api_key"] for sub in DEFAULT_SEED["subaccounts"]]
KEYS = [*sorted(SUBACCOUNTS), PRIMARY]  # the order the demo promises
SEEDED = [DEFAULT_SEED["primary"]["secret"], *(s["secret"] for s in DEFAULT_SEED["subaccounts"])]
# What rotator generates: 25 letters and digits with at least one of each class.
SECRET_LIKE = re.compile(
    r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[0-9])"
    r"[A-Za-z0-9]{25}(?![A-Za-z0-9])"
)
VAULT_URL = re.compile(r"OpenBao dev server\s+(http://127\.0\.0\.1:(\d+))")


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rotator", "demo", *args]


def demo_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("ROTATOR_CONFIG", "VAULT_TOKEN", "BAO_TOKEN", "VAULT_ADDR", "BAO_ADDR"):
        env.pop(name, None)
    return env


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes (not this one) that contain ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(cmdline)
    return found


def bao_port(output: str) -> int:
    match = VAULT_URL.search(output)
    assert match, "the demo prints the OpenBao URL"
    return int(match.group(2))


class Running:
    """A demo subprocess whose output is collected line by line as it comes."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            demo_command(*args),
            cwd=cwd,
            env=demo_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = re.search(pattern, "".join(self._lines))
                if match:
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no {pattern!r} in the demo's output:\n{self.output}")
                self._changed.wait(min(left, 0.5))

    def finish(self, timeout: float = 120.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    output: str
    workdir: Path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One `rotator demo --workdir DIR` with default settings, as the README runs it."""
    base = tmp_path_factory.mktemp("demo")
    workdir = base / "work"
    result = subprocess.run(
        demo_command("--workdir", str(workdir)),
        cwd=base,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return DemoRun(result.returncode, result.stdout + result.stderr, workdir)


def test_demo_rotates_every_key_subaccounts_first(demo_run: DemoRun) -> None:
    """The demo exits 0 after rotating the three subaccounts, then the primary."""
    assert demo_run.returncode == 0, demo_run.output
    rotated = re.findall(r"^\s+rotated\s+(\S+)\s", demo_run.output, re.MULTILINE)
    assert rotated == KEYS
    assert "4 of 4 keys rotated" in demo_run.output


def test_demo_shows_every_key_succeeded_in_the_status_table(demo_run: DemoRun) -> None:
    """The status table has a row per key with one secret on Vonage and a succeeded last run."""
    rows = {
        cells[0]: cells
        for line in demo_run.output.splitlines()
        if (cells := [c.strip() for c in line.strip("│ \n").split("│")]) and cells[0] in KEYS
    }
    assert sorted(rows) == sorted(KEYS)
    assert {key: (row[4], row[5]) for key, row in rows.items()} == {
        key: ("1", "succeeded") for key in KEYS
    }


def test_demo_verifies_the_audit_chain(demo_run: DemoRun) -> None:
    """The demo reports the hash chain verified, and the kept audit database agrees (12 events
    a run, 2 of them run.update, and a fold after each run)."""
    assert re.search(r"Audit chain verified: 52 events", demo_run.output), demo_run.output
    config = load_config(demo_run.workdir / "config.yaml")
    engine = make_engine(config.database.url)
    try:
        audit = AuditLog(engine)
        report = audit.verify_chain()
        statuses = {run.api_key: run.status for run in audit.runs()}
    finally:
        engine.dispose()
    assert (report.ok, report.checked) == (True, 52)
    assert statuses == dict.fromkeys(KEYS, RunStatus.SUCCEEDED)


def test_demo_shows_the_audit_trail_of_each_run(demo_run: DemoRun) -> None:
    """Every run's steps are printed, from run.start through revoke to run.end."""
    steps = re.findall(r"^│\s*\d+\s*│\s*([a-z_.]+)\s*│", demo_run.output, re.MULTILINE)
    one_run = ["run.start", "inspect", "run.update", "make_room", "generate", "stage",
               "run.update", "create", "verify", "promote", "revoke", "run.end"]  # fmt: skip
    assert steps == one_run * len(KEYS)


def test_demo_output_holds_no_secret_value(demo_run: DemoRun) -> None:
    """Neither the seeded secrets, the generated ones, nor the Vault root token are printed."""
    banner = (demo_run.workdir / "openbao.log").read_text()
    root_token = re.search(r"Root Token:\s*(\S+)", banner)
    assert root_token, "the dev server's banner names its root token"
    leaked = [s for s in [*SEEDED, root_token.group(1)] if s in demo_run.output]
    assert leaked == []
    assert SECRET_LIKE.findall(demo_run.output) == []


def test_demo_leaves_nothing_running(demo_run: DemoRun) -> None:
    """After the demo, its OpenBao is gone, no process refers to it, and the token file too."""
    port = bao_port(demo_run.output)
    assert processes_mentioning(f"127.0.0.1:{port}") == []
    assert processes_mentioning(str(demo_run.workdir)) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/sys/health", timeout=2)
    assert not (demo_run.workdir / "vault-token").exists()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for demo in started:
        demo.kill()


def test_ctrl_c_during_rotation_stops_everything(tmp_path: Path, running: list[Running]) -> None:
    """Ctrl-C while keys are rotating exits 130 and leaves no OpenBao process behind."""
    demo = Running("--workdir", str(tmp_path / "work"), "--propagation-delay", "5", cwd=tmp_path)
    running.append(demo)
    demo.wait_for(r"Rotating 4 keys")
    port = bao_port(demo.output)
    demo.process.send_signal(signal.SIGINT)
    assert demo.finish() == 130, demo.output
    assert "Interrupted" in demo.output
    assert processes_mentioning(f"127.0.0.1:{port}") == []


def test_keep_running_serves_the_daemon_until_ctrl_c(
    tmp_path: Path, running: list[Running]
) -> None:
    """--keep-running leaves `rotator run` serving its status page, without printing a secret
    held in Vault; Ctrl-C then stops the daemon, the simulator and OpenBao."""
    workdir = tmp_path / "work"
    demo = Running(
        "--keep-running", "--workdir", str(workdir), "--propagation-delay", "0", cwd=tmp_path
    )
    running.append(demo)
    status_url = demo.wait_for(r"status page: (http://\S+/status)").group(1)
    assert httpx.get(status_url, timeout=10).status_code == 200
    vault = hvac.Client(url=VAULT_URL.search(demo.output).group(1))  # type: ignore[union-attr]
    vault.token = (workdir / "vault-token").read_text()
    secrets = [
        vault.secrets.kv.v2.read_secret_version(
            path=f"vonage/{key}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]["api_secret"]
        for key in KEYS
    ]
    assert [s for s in secrets if s in demo.output] == []
    port = bao_port(demo.output)
    demo.process.send_signal(signal.SIGINT)
    assert demo.finish() == 0, demo.output
    assert processes_mentioning(f"127.0.0.1:{port}") == []
    assert processes_mentioning(str(workdir / "config.yaml")) == []
