"""``python -m rotator ...`` without paying for a new interpreter each time: a fork server.

A fresh interpreter spends ~1 s of CPU importing rotator's stack before the command starts, and
the suite runs the CLI a few hundred times. The fork server (``python -m tests.forkserver``)
imports it once; each command is a child forked from it that becomes ``python -m rotator`` the
way the interpreter does: ``runpy`` runs ``rotator/__main__.py`` as ``__main__`` with the
command's argv, environment, working directory and output files, and the child leaves through
the interpreter's normal exit (SystemExit's code, a traceback and 1 for an uncaught error,
threads joined, atexit run). It is a real process of its own — its pid, sockets, exit status and
SIGKILL are as real as a fresh one's; only the imports are already done. Start-up itself (what
a fresh interpreter imports, ``rotator --help`` speed) is tested with fresh interpreters
(tests/test_cli_startup.py and others that call ``subprocess`` directly).

The server speaks JSON lines on stdin/stdout: ``{"argv", "env", "cwd", "stdout", "stderr"}`` in,
``{"pid"}`` back at once and ``{"exit", "code"}`` when that child has been reaped (so a finished
child is never a zombie whose pid still looks alive).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class ForkServer:
    """The test process's side: ``run`` like ``subprocess.run``, ``popen`` like ``Popen``."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            text=True,
        )
        self._changed = threading.Condition()
        self._pids: list[int] = []
        self._exits: dict[int, int] = {}
        self._outputs = Path(tempfile.mkdtemp(prefix="rotator-forkserver-"))
        threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._changed:
                if "pid" in message:
                    self._pids.append(int(message["pid"]))
                else:
                    self._exits[int(message["exit"])] = int(message["code"])
                self._changed.notify_all()
        with self._changed:  # the server is gone: nobody will report another exit
            self._changed.notify_all()

    def popen(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        stdout: Path,
        stderr: Path | None = None,
        append: bool = False,
        cwd: str | None = None,
    ) -> Forked:
        """Start ``python -m rotator *argv`` writing to ``stdout`` and ``stderr`` (None: to
        ``stdout`` too, like ``stderr=STDOUT``), truncated first unless ``append``."""
        for path in (stdout, stderr):  # there when this returns, as with Popen and open()
            if path is not None:
                path.open("ab" if append else "wb").close()
        request = {
            "argv": argv,
            "env": env,
            "cwd": cwd or os.getcwd(),
            "stdout": str(stdout),
            "stderr": None if stderr is None else str(stderr),
            "append": append,
        }
        with self._changed:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the fork server exited with {self._proc.returncode}")
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            if not self._changed.wait_for(lambda: bool(self._pids), timeout=120):
                raise RuntimeError("the fork server did not fork within 120 s")
            pid = self._pids.pop(0)
        return Forked(self, pid, [sys.executable, "-m", "rotator", *argv])

    def _exit_code(self, pid: int, timeout: float | None) -> int | None:
        """The child's exit code once reaped (-N: killed by signal N); None at the timeout."""
        with self._changed:
            self._changed.wait_for(
                lambda: pid in self._exits or self._proc.poll() is not None, timeout=timeout
            )
            if pid not in self._exits and self._proc.poll() is not None:
                raise RuntimeError(f"the fork server exited with {self._proc.returncode}")
            return self._exits.get(pid)

    def run(
        self, argv: list[str], *, env: dict[str, str], timeout: float, cwd: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python -m rotator *argv``: its exit code and text output, as ``subprocess.run``
        with ``capture_output=True, text=True`` gives them (TimeoutExpired after a kill)."""
        out = Path(tempfile.mkstemp(dir=self._outputs)[1])
        err = Path(tempfile.mkstemp(dir=self._outputs)[1])
        try:
            child = self.popen(argv, env=env, stdout=out, stderr=err, cwd=cwd)
            try:
                code = child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise subprocess.TimeoutExpired(child.args, timeout, text(out), text(err)) from None
            return subprocess.CompletedProcess(child.args, code, text(out), text(err))
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(OSError):
            self._outputs.rmdir()


class Forked:
    """One forked ``rotator`` process, used like ``subprocess.Popen`` (its outputs are files)."""

    def __init__(self, server: ForkServer, pid: int, args: list[str]) -> None:
        self._server = server
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server._exit_code(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._server._exit_code(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never signal a pid that may have been reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


_SHARED: list[ForkServer] = []


def shared() -> ForkServer:
    """This test process's fork server, started on first use and stopped at exit."""
    if not _SHARED:
        _SHARED.append(ForkServer())
        atexit.register(_SHARED[0].close)
    return _SHARED[0]


def text(path: Path) -> str:
    """A file's content decoded as ``subprocess`` decodes in text mode: locale encoding,
    universal newlines."""
    data = path.read_bytes().decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")


# -- the fork server process itself -----------------------------------------------------------


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        print(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}), flush=True)


def serve() -> dict[str, Any] | None:
    """Import rotator once, then fork a child per request until stdin closes. Returns the
    request in a child (which then becomes rotator) and None in the server when it is done."""
    import gc

    import rotator.cli
    import rotator.services  # noqa: F401  (the CLI imports these lazily; the server pays once)

    gc.freeze()  # imported objects stay shared with the children instead of being copied
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
            request: dict[str, Any] = json.loads(line)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                return request
            children.add(pid)
            print(json.dumps({"pid": pid}), flush=True)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while children:
        pid, _ = os.waitpid(-1, 0)
        children.discard(pid)
    return None


def become_rotator(request: dict[str, Any]) -> None:
    """In a forked child: take the command's files, environment and argv, then run
    ``rotator/__main__.py`` as ``python -m rotator`` would; SystemExit ends the process."""
    import runpy

    mode = os.O_WRONLY | (os.O_APPEND if request["append"] else 0)  # the server's side made them
    stdin = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], mode)
    err = os.open(request["stderr"], mode) if request["stderr"] else os.dup(out)
    for fd, target in ((stdin, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-m", *request["argv"]]  # runpy puts __main__.py's path in argv[0]
    runpy.run_module("rotator", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    child_request = serve()
    if child_request is not None:
        become_rotator(child_request)
