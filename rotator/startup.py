"""A command's start-up, kept short: the cyclic garbage collector while modules load, and
structlog imported without rich.

A one-shot command such as ``rotator rotate KEY --emergency`` spends most of its life importing
modules, and nearly everything an import allocates lives until exit. CPython's collector keeps
re-scanning that growing heap (every 700 allocations, and the whole heap every so often): the
profile of an emergency showed a quarter of its CPU before the run starts in collections that
find almost nothing, and a last full collection at exit. So ``begin`` spaces collections out
while the command starts, pauses them altogether while ``loading`` the bulk of a command's
modules (a ``with`` block: resumed on the way out, whatever happens), and ``done`` (called once
the command's collaborators are built) moves what start-up allocated to the permanent generation
(``gc.freeze``: never scanned again) and restores the usual thresholds for the work itself.

structlog imports rich, when it is installed, for pretty console tracebacks: rich, pygments and
attrs, about a tenth of what an emergency imports. rotator renders exceptions to text itself
(``format_exc_info``, before any renderer) and uses rich only for its tables, so the command line
imports structlog with rich hidden; a table imports rich later as usual.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

# gen 0 every 10,000 allocations instead of 700; gen 1 and the full heap rarely, until done().
STARTUP_THRESHOLDS: Final = (10_000, 100, 1_000)


class _Startup:
    def __init__(self) -> None:
        self.saved: tuple[int, int, int] | None = None


_state = _Startup()


def begin() -> None:
    """Space collections out until ``done`` (the command line calls this first)."""
    if _state.saved is None:
        _state.saved = gc.get_threshold()
        gc.set_threshold(*STARTUP_THRESHOLDS)


@contextmanager
def loading() -> Iterator[None]:
    """No collection while the block imports modules (during the command line's start-up; a
    no-op otherwise); what it allocated is frozen on the way out, as modules live until exit
    (re-enabling alone would make the next collection scan all of it)."""
    pause = _state.saved is not None and gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause:
            gc.freeze()
            gc.enable()


def done() -> None:
    """Start-up is over: freeze what it allocated, collect as usual from now on.

    A no-op unless ``begin`` ran (code that builds services outside the command line, tests
    for one, keeps the defaults); the daemon, started by the command line, freezes too.
    """
    saved, _state.saved = _state.saved, None
    if saved is not None:
        gc.freeze()
        gc.set_threshold(*saved)


def import_structlog_without_rich() -> None:
    """Import structlog as if rich were not installed (unless either is imported already)."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # makes ``import rich`` fail
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


def at_exit() -> None:
    """Before the interpreter exits: its last full collection need not scan the whole heap."""
    gc.freeze()


__all__ = [
    "STARTUP_THRESHOLDS",
    "at_exit",
    "begin",
    "done",
    "import_structlog_without_rich",
    "loading",
]
