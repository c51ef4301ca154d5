"""Test-only pause points at step boundaries, for the crash tests.

With ``ROTATOR_TEST_PAUSE_AT=after:create`` (comma-separated boundaries) and
``ROTATOR_TEST_PAUSE_FILE=/path``, the process writes the boundary name to that file when it gets
there and then blocks, so a test can SIGKILL it at an exact point. Inert unless both are set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def boundary(name: str) -> None:
    wanted = os.environ.get("ROTATOR_TEST_PAUSE_AT")
    marker = os.environ.get("ROTATOR_TEST_PAUSE_FILE")
    if not wanted or not marker or name not in wanted.split(","):
        return
    Path(marker).write_text(name)
    while True:  # until the test kills us
        time.sleep(3600)
