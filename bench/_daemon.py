"""A running ``rotator run`` with the control API on (loopback, no TLS), and Vault tokens for it
minted by the bench's OpenBao with the policies from deploy/vault/: what an on-call tool talks
to when it asks the daemon for an emergency rotation instead of starting a CLI."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench._common import REPO, Stack

BREAKGLASS = REPO / "deploy" / "vault" / "control-breakglass-policy.hcl"
START_TIMEOUT = 120.0
T = TypeVar("T")

CONTROL: dict[str, Any] = {
    "http": {"control": {"enabled": True, "rate_per_minute": 6000}},
}


def wait_for(check: Callable[[], T | None], what: str, timeout: float = START_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while (found := check()) is None or found is False:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return found


class Daemon:
    """One ``rotator run`` subprocess of a stack, and an HTTP client for its listener."""

    def __init__(self, world: Stack, log: Path) -> None:
        self.world = world
        host, port = str(world.data["http"]["listen"]).rsplit(":", 1)
        self.base = f"http://{host}:{port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            world.command("run"), stdout=self._log, stderr=subprocess.STDOUT, env=world.env()
        )
        # the listener closes every connection after its answer: never reuse one
        self.http = httpx.Client(
            base_url=self.base, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.root = world.bao.root_token.reveal()

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"rotator run exited with {self.proc.returncode}")

    def keys(self) -> list[dict[str, Any]] | None:
        self._alive()
        try:
            answer = self.http.get("/v1/keys", headers={"X-Vault-Token": self.root})
        except httpx.TransportError:
            return None
        if answer.status_code != 200:
            return None
        keys: list[dict[str, Any]] = answer.json()["keys"]
        return keys

    def settled(self, key: str) -> bool:
        """``key`` rotated once (the daemon's first pass) and no rotation running. (The primary
        is first due about an hour after start: it never runs into the measurements.)"""
        keys = {k["api_key"]: k for k in self.keys() or []}
        return (
            key in keys
            and bool(keys[key]["last_success"])
            and all((k["last_run"] or {}).get("status") != "running" for k in keys.values())
        )

    def run_over(self, run_id: str) -> bool:
        answer = self.http.get(f"/v1/runs/{run_id}", headers={"X-Vault-Token": self.root})
        return answer.status_code == 200 and answer.json()["status"] != "running"

    def breakglass_token(self) -> str:
        client = self.world.vault_client()
        try:
            client.sys.create_or_update_policy(
                name="rotator-control-breakglass", policy=BREAKGLASS.read_text()
            )
            made = client.auth.token.create(
                policies=["rotator-control-breakglass"], display_name="bench-breakglass", ttl="1h"
            )
        finally:
            client.adapter.close()
        token: str = made["auth"]["client_token"]
        return token

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def daemon(world: Stack, key: str) -> Iterator[Daemon]:
    """``rotator run`` on the stack, once it has rotated ``key`` for the first time."""
    running = Daemon(world, world.workdir / "daemon.log")
    try:
        wait_for(lambda: running.settled(key), f"the daemon's first rotation of {key}")
        yield running
    finally:
        running.stop()
