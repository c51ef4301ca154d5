"""The status page's screenshots for the README (docs/status-*.png): renders a synthetic fleet
of 4 and of 10,000 keys (and one key's page) to HTML, then has a real headless Chromium take a
picture of each. ``scripts/screenshots`` installs Chromium first."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from rotator.clock import utcnow
from rotator.devtools.fleet import FAILING, HEALTHY, IN_GRACE, fleet_snapshot
from rotator.snapshot import StepMark
from rotator.statuspage import StatusPages

SHOTS = {  # file name -> (keys, path, query)
    "status-4-keys.png": (4, "/status", ""),
    "status-10000-keys.png": (10_000, "/status", ""),
    "status-key-page.png": (4, "/status/keys/sub00001", ""),
}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,1800",
]


def render(keys: int, path: str, query: str) -> bytes:
    names: list[str | None] = [None, "eu-billing <script>x</script>", "marketing", None]
    snapshot = fleet_snapshot(
        keys, now=utcnow(), names=names, rolls=[HEALTHY, FAILING, IN_GRACE, HEALTHY]
    )
    answer = StatusPages(lambda: snapshot, _steps).answer(path, query, wants_html=True)
    if answer is None or answer.status != 200:
        raise SystemExit(f"{path} did not render")
    return answer.body


def _steps(_key: str, _run_id: str) -> tuple[StepMark, ...]:
    """What a failed run's audit events look like on the key page (ids, never values)."""
    at = utcnow()
    names = [("lease", "ok", None), ("inspect", "ok", "3f1c9a7e-0b1d-4a55-9c1e-2d7f0e6b1a01")]
    names += [("create", "failed", "8a2b4c6d-1e3f-4a5b-8c7d-9e0f1a2b3c4d")]
    return tuple(
        StepMark(
            step=step,
            outcome=outcome,
            started_at=at,
            finished_at=at,
            request_id=request_id,
            error="VonageAuthError: 401 credentials refused" if outcome == "failed" else None,
        )
        for step, outcome, request_id in names
    )


def shoot(html_file: Path, png: Path, chromium: str) -> None:
    with tempfile.TemporaryDirectory(prefix="rotator-chromium-") as profile:
        subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                html_file.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--out", type=Path, default=Path("docs"))
    opts = args.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: run scripts/screenshots (it installs it)")
    opts.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rotator-shots-") as work:
        for name, (keys, path, query) in SHOTS.items():
            page = Path(work) / name.replace(".png", ".html")
            page.write_bytes(render(keys, path, query))
            shoot(page, opts.out / name, chromium)
            print(f"{opts.out / name}: {keys} keys, {path}")


if __name__ == "__main__":
    main()
