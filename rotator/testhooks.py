"""Test-only pause points at step boundaries, for the crash and concurrency tests.

With ``ROTATOR_TEST_PAUSE_AT=after:create`` (comma-separated boundaries) and
``ROTATOR_TEST_PAUSE_FILE=/path``, the process writes the boundary name to that file when it gets
there and then blocks for as long as the file exists: a test can SIGKILL it at that exact point,
or delete the file to let it go on. Inert unless both variables are set.
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
    path = Path(marker)
    path.write_text(name)
    while path.exists():
        time.sleep(0.05)
