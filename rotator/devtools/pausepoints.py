"""Pause points at step boundaries, for the crash and concurrency tests.

With ``ROTATOR_TEST_PAUSE_AT=after:create`` (comma-separated boundaries) and
``ROTATOR_TEST_PAUSE_FILE=/path``, the process writes the boundary name to that file when it gets
there and then blocks for as long as the file exists: a test can SIGKILL it at that exact point,
or delete the file to let it go on. Only the CLI installs it (as the ``Rotator``'s step boundary,
``from_environment()``); inert unless both variables are set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

PAUSE_AT = "ROTATOR_TEST_PAUSE_AT"
PAUSE_FILE = "ROTATOR_TEST_PAUSE_FILE"


def _none(name: str) -> None:
    """No pause points configured."""


def from_environment(environ: Mapping[str, str] | None = None) -> Callable[[str], None]:
    """The step boundary the environment asks for: pause at the named ones, else do nothing."""
    env = os.environ if environ is None else environ
    wanted, marker = env.get(PAUSE_AT), env.get(PAUSE_FILE)
    if not wanted or not marker:
        return _none
    return pause_at(set(wanted.split(",")), Path(marker))


def pause_at(boundaries: set[str], marker: Path) -> Callable[[str], None]:
    """A boundary that, at each of ``boundaries``, writes ``marker`` and waits until it is gone."""

    def boundary(name: str) -> None:
        if name not in boundaries:
            return
        marker.write_text(name)
        while marker.exists():
            time.sleep(0.05)

    return boundary
