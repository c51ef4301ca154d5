"""A command's start-up, kept short: the cyclic garbage collector while modules load, and
structlog imported without rich.

A one-shot command such as ``rotator rotate KEY --emergency`` spends most of its life importing
modules, and nearly everything an import allocates lives until exit. CPython's collector keeps
re-scanning that growing heap (every 700 allocations, and the whole heap every so often): the
profile of an emergency showed a quarter of its CPU before the run starts in collections that
find almost nothing, and a last full collection at exit. So ``begin`` (the first thing
``python -m rotator`` and the ``rotator`` script do) pauses collections while the command line
loads and parses its arguments, and spaces them out once the command's own code starts (the end
of the first ``loading`` block); ``loading`` pauses them again while the command imports the
bulk of its modules and opens its database (a ``with`` block: resumed on the way out, whatever
happens, what it allocated frozen); ``done`` (called once the command's collaborators are built)
moves what start-up allocated to the permanent generation (``gc.freeze``: never scanned again)
and restores the usual thresholds for the work itself. Measured (bench/RESULTS.md): ~35
collections, ~12 ms, before an emergency's POST without the pause from ``begin``; ~15, 2.5 ms
with it (those left run before ``begin``, while ``rotator`` itself is imported).

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
        self.paused = False  # by ``begin``, until a ``loading`` block or ``done`` ends


_state = _Startup()


def begin() -> None:
    """Pause collections until the command's own code starts (the end of its first ``loading``
    block), then space them out until ``done``. ``python -m rotator`` calls this first."""
    if _state.saved is None:
        _state.saved = gc.get_threshold()
        gc.set_threshold(*STARTUP_THRESHOLDS)
        if gc.isenabled():
            gc.disable()
            _state.paused = True


@contextmanager
def loading() -> Iterator[None]:
    """No collection while the block imports modules (during the command line's start-up; a
    no-op otherwise); what it allocated is frozen on the way out, as modules live until exit
    (re-enabling alone would make the next collection scan all of it), and collections resume
    (also those ``begin`` paused: the command's own code has started)."""
    pause = _state.saved is not None and (gc.isenabled() or _state.paused)
    if pause:
        gc.disable()
        _state.paused = False  # this block holds the pause now: a nested one leaves it alone
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
    if _state.paused:
        _state.paused = False
        gc.enable()


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
