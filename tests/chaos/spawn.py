"""Starting rotator processes for the chaos harness, two ways; both give real, killable processes.

- ``exec``: ``python -m rotator ...`` — a fresh interpreter each time.
- ``fork``: a child of the suite's fork server (tests/forkserver.py), which imported rotator
  once: the same ``python -m rotator`` with the same argv, environment and output files, and its
  own process — SIGKILL, a lease owner's pid and every socket are as real as with ``exec`` — it
  just skips the imports, so a run costs a fraction of the CPU and far more runs fit in the same
  time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from tests.forkserver import Forked, ForkServer


class Process(Protocol):
    pid: int

    @property
    def alive(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def kill(self) -> bool:
        """SIGKILL; True if that is what ended it."""
        ...

    def wait(self, timeout: float) -> int | None: ...


class ExecProcess:
    def __init__(self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> None:
        with stdout.open("wb") as out, stderr.open("ab") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "rotator", *argv], stdout=out, stderr=err, env=env
            )
        self.pid = self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def kill(self) -> bool:
        """SIGKILL; True if that is what ended it."""
        if self._proc.poll() is not None:
            return False
        self._proc.send_signal(signal.SIGKILL)
        return self._proc.wait(timeout=30) == -signal.SIGKILL

    def wait(self, timeout: float) -> int | None:
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class ForkProcess:
    """A child of the suite's fork server (tests/forkserver.py)."""

    def __init__(self, forked: Forked) -> None:
        self._forked = forked
        self.pid = forked.pid

    @property
    def returncode(self) -> int | None:
        return self._forked.poll()

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def kill(self) -> bool:
        """SIGKILL; True if that is what ended it."""
        if not self.alive:
            return False
        self._forked.kill()
        return self.wait(30) == -signal.SIGKILL

    def wait(self, timeout: float) -> int | None:
        try:
            return self._forked.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class Spawner:
    """``start(argv, env, stdout, stderr)`` a ``rotator`` process, by exec or by fork."""

    def __init__(self, mode: str) -> None:
        if mode not in ("exec", "fork"):
            raise ValueError("spawn mode must be 'exec' or 'fork'")
        self.mode = mode
        self._server = ForkServer() if mode == "fork" else None

    def start(self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> Process:
        if self._server is None:
            return ExecProcess(argv, env, stdout, stderr)
        stdout.write_bytes(b"")  # a new output; the log (stderr) is appended to, as with exec
        return ForkProcess(
            self._server.popen(argv, env=env, stdout=stdout, stderr=stderr, append=True)
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
