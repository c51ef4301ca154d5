"""The status page's render time and size at 10 and 10,000 keys (issue 15 targets: < 100 ms and
< 200 KB), from a synthetic snapshot like the daemon's in-memory one: the overview page, a
filtered page, the JSON and one key's page.

    .venv/bin/python -m bench.status_page                 # 10 and 10,000 keys, 15 repetitions
    .venv/bin/python -m bench.status_page --keys 10 --reps 3
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench._common import median, parser, table
from rotator.clock import utcnow
from rotator.devtools.fleet import fleet_snapshot
from rotator.statuspage import StatusPages

TARGET_MS, TARGET_KB = 100.0, 200.0


def measure(render: Callable[[], bytes], reps: int) -> tuple[float, int]:
    """Median milliseconds of ``reps`` renders, and the size of the answer."""
    times, size = [], 0
    for _ in range(reps):
        started = time.perf_counter()
        size = len(render())
        times.append((time.perf_counter() - started) * 1000)
    return median(times), size


def rows_for(keys: int, reps: int) -> list[list[object]]:
    snapshot = fleet_snapshot(keys, now=utcnow())
    pages = StatusPages(lambda: snapshot)
    cases = {
        "overview (HTML)": ("/status", "", True),
        "?state=failing (HTML)": ("/status", "state=failing", True),
        "/status JSON": ("/status", "", False),
        "key page": ("/status/keys/sub00001" if keys > 1 else "/status/keys/primary0", "", True),
    }
    out: list[list[object]] = []
    for what, (path, query, wants_html) in cases.items():

        def render(p: str = path, q: str = query, h: bool = wants_html) -> bytes:
            answer = pages.answer(p, q, wants_html=h)
            if answer is None or answer.status != 200:
                raise SystemExit(f"{p}?{q} did not render")
            return answer.body

        ms, size = measure(render, reps)
        ok = "yes" if ms < TARGET_MS and size < TARGET_KB * 1024 else "NO"
        out.append([keys, what, f"{ms:.1f}", f"{size / 1024:.1f}", ok])
    return out


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--keys", type=int, action="append", help="repeatable (default 10, 10000)")
    args.add_argument("--reps", type=int, default=15)
    opts = args.parse_args()
    rows: list[list[object]] = []
    for keys in opts.keys or [10, 10_000]:
        rows += rows_for(keys, opts.reps)
    print(f"## Status page (targets: < {TARGET_MS:.0f} ms, < {TARGET_KB:.0f} KB)")
    print()
    print(table(["keys", "page", "render ms (median)", "size KB", "within target"], rows))


if __name__ == "__main__":
    main()
