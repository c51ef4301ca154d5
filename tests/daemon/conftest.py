"""Fixtures for the daemon's tests: a PostgreSQL world, `rotator run` subprocesses, a webhook
receiver on loopback, and polling with deadlines (never a sleep as an assertion)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import hvac
import pytest

from rotator import db
from rotator.audit import AuditLog, Run
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.polling import wait_until
from rotator.devtools.simulator import VonageSimulator
from tests import forkserver
from tests.conftest import (
    PRIMARY,
    PRIMARY_SECRET,
    SUBACCOUNTS,
    World,
    ensure_migrated,
    pg_database,
)

T = TypeVar("T")

FAST = {
    "rotation": {
        "schedule": {"interval": "3s", "jitter": "0s"},
        "lease_ttl": "3s",
        "retry_delay": "1s",
    },
    "accounts": {"discovery_interval": "1s"},
    "http": {"listen": "127.0.0.1:0"},
    "logging": {"format": "json", "level": "info"},
}


def wait_for(condition: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    try:
        return wait_until(condition, timeout=timeout, what=what)
    except TimeoutError as exc:
        pytest.fail(str(exc))


def add_subaccounts(sim: VonageSimulator, count: int, start: int = 3) -> list[str]:
    keys = []
    for n in range(start, start + count):
        key = f"sub{n:05d}"
        sim.add_subaccount(key, f"Sub{n}Secret{n:04d}x", name=f"Team {n}")
        keys.append(key)
    return keys


class DaemonProcess:
    """One `rotator run` subprocess (forked from a warm interpreter: tests/forkserver.py); its
    JSON log lines go to a file the test can read."""

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_path
        self.proc = forkserver.shared().popen(
            ["--config", str(config_path), "run", *args],
            env={**os.environ, **(env or {})},
            stdout=log_path,
        )
        self._port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events() if e.get("event") == name), None)

    @property
    def port(self) -> int:
        if self._port is None:
            found = wait_for(
                lambda: self.event("http_listening") or self._exited(), what="the HTTP server"
            )
            self._port = int(found["port"])
        return self._port

    def _exited(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"rotator run exited with {self.proc.returncode}:\n{self.output()}")

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=10)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.get("/status").json()
        return body

    def wait_running(self) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.status())["phase"] == "running" and s, what="phase 'running'"
        )

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"rotator run did not exit within {timeout:g}s:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def pg_world(
    sim: VonageSimulator,
    openbao: OpenBaoDevServer,
    vault_admin: hvac.Client,
    postgres_url: str,
    tmp_path: Path,
) -> Iterator[World]:
    """A world on PostgreSQL (replicas share leases through it), with short schedules."""
    w = World(sim, openbao, vault_admin, postgres_url, tmp_path)
    w.configure(**FAST)
    yield w
    w.close()


@contextmanager
def own_world(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path: Path, **sections: Any
) -> Iterator[World]:
    """A world with its own simulator and PostgreSQL database, for module-scoped fixtures that
    run one daemon session and let several tests assert on it."""
    subaccounts = [
        {"api_key": key, "secret": secret, "name": f"Dept {key[-1]}"}
        for key, secret in SUBACCOUNTS.items()
    ]
    with (
        VonageSimulator(
            primary_api_key=PRIMARY, primary_secret=PRIMARY_SECRET, subaccounts=subaccounts
        ) as sim,
        pg_database() as url,
    ):
        world = World(sim, openbao, vault_admin, url, tmp_path)
        world.configure(**FAST).configure(**sections)
        try:
            yield world
        finally:
            world.close()


def start_daemon(
    world: World,
    name: str = "daemon",
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    directory: Path | None = None,
) -> DaemonProcess:
    """`rotator run` on a copy of the world's config; config and log in ``directory``."""
    directory = directory or world.tmp_path
    config = directory / f"{name}.yaml"
    config.write_text(world.config_file().read_text())
    return DaemonProcess(config, directory / f"{name}.log", env=env, args=args)


def open_audit(world: World) -> AuditLog:
    engine = db.make_engine(world.database_url)
    db.upgrade(engine)
    return AuditLog(engine)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `rotator run` processes (killed at teardown if still alive)."""
    started: list[DaemonProcess] = []

    def start(world: World, name: str = "daemon", **options: Any) -> DaemonProcess:
        process = start_daemon(world, name, directory=tmp_path, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def audit_log(pg_world: World, migrated_schema: None) -> Iterator[AuditLog]:
    engine = db.make_engine(pg_world.database_url)
    ensure_migrated(engine)
    yield AuditLog(engine)
    engine.dispose()


def runs_of(audit: AuditLog, api_key: str, status: str | None = None) -> list[Run]:
    return [r for r in audit.runs(api_key=api_key) if status is None or r.status == status]


class WebhookReceiver:
    """A tiny HTTP server on loopback that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/T000/SECRETPATH"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
