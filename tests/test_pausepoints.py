"""The crash tests' pause points (rotator.devtools.pausepoints) stay out of the way unasked."""

from __future__ import annotations

from pathlib import Path

from rotator.devtools.pausepoints import PAUSE_AT, PAUSE_FILE, from_environment


def test_pause_points_are_inert_without_both_variables(tmp_path: Path) -> None:
    """With only the marker file named, a boundary neither writes the marker nor waits."""
    marker = tmp_path / "pause"
    from_environment({PAUSE_FILE: str(marker)})("after:create")
    assert not marker.exists()


def test_an_unlisted_boundary_passes_straight_through(tmp_path: Path) -> None:
    """A boundary not named in the pause list does not pause."""
    marker = tmp_path / "pause"
    from_environment({PAUSE_AT: "after:create", PAUSE_FILE: str(marker)})("before:create")
    assert not marker.exists()
