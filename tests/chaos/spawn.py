"""Starting rotator processes for the chaos harness, two ways; both give real, killable processes.

- ``exec``: ``python -m rotator ...`` — a fresh interpreter each time (~1.5 s of CPU to import).
- ``fork``: a zygote (``python -m tests.chaos.spawn``) imports rotator's CLI once, then forks a
  child per rotation that runs the same entry point (``rotator.cli.app``) with the same argv,
  environment and output files. The child is its own process — SIGKILL, a lease owner's pid and
  every socket are as real as with ``exec`` — it just skips the imports, so a run costs a fraction
  of the CPU and far more runs fit in the same time.

The zygote speaks JSON lines: the harness sends ``{"argv", "env", "stdout", "stderr"}`` and
reads back ``{"pid"}`` for each start and ``{"exit", "code"}`` when a child ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[2]


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
    def __init__(self, zygote: Zygote, pid: int) -> None:
        self._zygote = zygote
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self._zygote.exit_code(self.pid)

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def kill(self) -> bool:
        """SIGKILL; True if that is what ended it."""
        if not self.alive:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return self.wait(30) == -signal.SIGKILL

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.returncode


class Zygote:
    """The harness's side of the zygote process."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.spawn"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
            text=True,
        )
        self._lock = threading.Lock()
        self._exits: dict[int, int] = {}
        self._pids: list[int] = []
        self._started = threading.Condition(self._lock)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._started:
                if "pid" in message:
                    self._pids.append(int(message["pid"]))
                    self._started.notify_all()
                elif "exit" in message:
                    self._exits[int(message["exit"])] = int(message["code"])

    def start(
        self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path
    ) -> ForkProcess:
        request = {"argv": argv, "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        with self._started:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the rotator zygote exited with {self._proc.returncode}")
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            if not self._started.wait_for(lambda: bool(self._pids), timeout=60):
                raise RuntimeError("the rotator zygote did not fork within 60s")
            pid = self._pids.pop(0)
        return ForkProcess(self, pid)

    def exit_code(self, pid: int) -> int | None:
        with self._lock:
            return self._exits.get(pid)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class Spawner:
    """``start(argv, env, stdout, stderr)`` a ``rotator`` process, by exec or by fork."""

    def __init__(self, mode: str) -> None:
        if mode not in ("exec", "fork"):
            raise ValueError("spawn mode must be 'exec' or 'fork'")
        self.mode = mode
        self._zygote = Zygote() if mode == "fork" else None

    def start(self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> Process:
        if self._zygote is None:
            return ExecProcess(argv, env, stdout, stderr)
        return self._zygote.start(argv, env, stdout, stderr)

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.close()


# -- the zygote process itself -----------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become ``rotator <argv>`` and never return."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own group, like a fresh process: no signal meant for the zygote
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (devnull, out, err):
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["rotator", *request["argv"]]
        from rotator.cli import app

        try:
            app(args=request["argv"], prog_name="rotator")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"exit": pid, "code": code}), flush=True)


def serve() -> None:
    """Import rotator's CLI once, then fork a child per request until stdin closes."""
    import rotator.cli
    import rotator.services  # noqa: F401  (the CLI imports it lazily; the zygote pays once)

    children: set[int] = set()
    pending = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.01)
        _reap(children)
        if not ready:
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(request)
            children.add(pid)
            print(json.dumps({"pid": pid}), flush=True)
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while children and time.monotonic() < deadline:
        _reap(children)
        time.sleep(0.01)


if __name__ == "__main__":
    serve()
