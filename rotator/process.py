"""The process itself as a place secrets can leak from: core dumps and ptrace-style reads.

A core of the daemon holds every live secret and the Vault token, so ``harden_process`` turns
core dumps off (RLIMIT_CORE 0, hard limit included, so nothing below can turn them back on) and,
on Linux, makes the process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``), which also keeps other
processes of the same user from reading its memory through /proc. Call it first thing at start.
"""

from __future__ import annotations

import ctypes
import resource
import sys
from typing import Final

PR_SET_DUMPABLE: Final = 4


def harden_process() -> list[str]:
    """Disable core dumps and (Linux) make the process non-dumpable; returns what was done.

    Never raises: a platform without ``prctl`` still gets the rlimit, and a failure is logged.
    """
    done = []
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        done.append("core dumps off")
    except (OSError, ValueError) as exc:
        _warn("core_limit_failed", exc)
    if sys.platform.startswith("linux"):
        try:
            # the interpreter's own symbols include libc's: no ``find_library``, which runs
            # ``ldconfig -p`` in a subprocess (milliseconds on every command's start)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
            done.append("not dumpable")
        except (OSError, AttributeError) as exc:  # AttributeError: no prctl among the symbols
            _warn("dumpable_failed", exc)
    return done


def _warn(event: str, exc: Exception) -> None:
    import structlog  # only on failure: the CLI calls harden_process before anything heavy loads

    structlog.get_logger("rotator.process").warning(event, error=str(exc))


__all__ = ["harden_process"]
