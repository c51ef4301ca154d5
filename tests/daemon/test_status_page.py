"""The status page's structure, filters, pictures and escaping (parsed HTML, no browser), its
routes over loopback, and the daemon's in-memory run history behind it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest

from rotator import db
from rotator.audit import AuditLog, RunStatus, Trigger
from rotator.daemon.history import RECENT_RUNS, new_ring, recent_runs, remember
from rotator.daemon.registry import Facts, KeyRegistry
from rotator.devtools.fleet import fleet_snapshot
from rotator.discovery import Account
from rotator.services import Services
from rotator.statuspage import StatusPages, render_html, status_json
from rotator.statuspage.filters import PER_PAGE, Query, parse_query
from rotator.statuspage.states import STATES
from tests.conftest import World
from tests.daemon.test_http import Server

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = ["<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "\x1b[31mred\x1b[0m"]


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, css: str | None = None) -> int:
        return sum(
            1
            for t, a in self.tags
            if t == tag and (css is None or css in (a.get("class") or "").split())
        )


def rows_of(page: str) -> int:
    """Rows in the full list (the table with class "keys")."""
    body = page.split('<table class="keys">', 1)[1].split("</table>", 1)[0]
    return body.count("<tr class=")


@pytest.fixture
def pages(world: World, services: Services) -> Iterator[Server]:
    s = Server(services, lambda: fleet_snapshot(250, now=NOW, names=[*HOSTILE, None]))
    yield s
    s.http.stop()


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite: the page's own tests are about rendering and routing."""
    return sqlite_url


@pytest.fixture
def services(world: World) -> Services:
    world.seed_primary()
    return world.services()


def test_summary_counts_every_key_once_by_state() -> None:
    """The summary has a count per state in the table, and they add up to the fleet."""
    body = status_json(fleet_snapshot(500, now=NOW))
    assert list(body["summary"]) == [s.name for s in STATES]
    assert sum(body["summary"].values()) == 500
    assert body["summary"]["failing"] > 0
    assert body["summary"]["in_grace"] > 0


def test_overview_puts_summary_then_attention_then_the_list() -> None:
    """Summary cards come first, then the keys needing attention, then the paginated list."""
    page = render_html(fleet_snapshot(500, now=NOW))
    cards, attention, full = (
        page.index('class="card'),
        page.index('<table class="attention">'),
        page.index('<table class="keys">'),
    )
    assert cards < attention < full
    assert rows_of(page) == PER_PAGE


def test_state_filter_keeps_only_that_state() -> None:
    """?state=failing lists only failing keys, and the JSON says how many matched."""
    body = status_json(fleet_snapshot(500, now=NOW), parse_query("state=failing"))
    assert body["keys"]
    assert {k["state"] for k in body["keys"]} == {"failing"}
    assert body["pagination"]["matching"] == body["summary"]["failing"]


def test_text_filter_matches_key_or_name() -> None:
    """?q= matches a substring of the API key (case-insensitive) on the server."""
    body = status_json(fleet_snapshot(500, now=NOW), parse_query("q=SUB0012"))
    assert [k["api_key"] for k in body["keys"]] == [f"sub0012{i}" for i in range(10)]


def test_pages_cover_the_fleet_without_overlap() -> None:
    """?page=N walks the list; the pages together hold every key exactly once."""
    snapshot = fleet_snapshot(250, now=NOW)
    seen: list[str] = []
    for n in (1, 2, 3):
        body = status_json(snapshot, Query(page=n))
        assert body["pagination"] == {
            "page": n,
            "pages": 3,
            "per_page": PER_PAGE,
            "matching": 250,
            "total": 250,
        }
        seen += [k["api_key"] for k in body["keys"]]
    assert sorted(seen) == sorted(k.api_key for k in snapshot.keys)


@pytest.mark.parametrize(
    "query", ["state=bogus", "page=abc", "page=-1", "admin=1", "refresh=soon", "q=" + "&q=x" * 20]
)
def test_bad_query_is_400(pages: Server, query: str) -> None:
    """An unknown state, a non-numeric page, an unknown parameter: 400, echoing nothing."""
    response = pages.get(f"/status?{query}")
    assert response.status_code == 400
    assert "bogus" not in response.text
    assert "admin" not in response.text


def test_refresh_is_optional_and_bounded() -> None:
    """No meta refresh unless asked; ?refresh= is clamped to 5..3600 seconds."""
    snapshot = fleet_snapshot(5, now=NOW)
    assert 'http-equiv="refresh"' not in render_html(snapshot)
    assert 'content="5"' in render_html(snapshot, parse_query("refresh=1"))
    assert 'content="3600"' in render_html(snapshot, parse_query("refresh=999999"))


def test_hostile_names_are_escaped_everywhere(pages: Server) -> None:
    """Markup, quotes and ANSI escapes in key names stay text on every page."""
    for path in ("/status.html?q=sub0000", "/status/keys/sub00001", "/status/keys/sub00002"):
        page = pages.get(path).text
        tags = Tags(page)
        assert tags.count("script") == 0, path
        assert tags.count("img") == 0, path
        assert "\x1b" not in page
        assert "\\x1b[31mred" in page or "&lt;script&gt;" in page or "&quot;" in page


def test_no_script_and_the_strict_csp_on_every_page(pages: Server) -> None:
    """Pictures are inline SVG: no script anywhere, and the CSP still forbids everything else."""
    for path in ("/status.html", "/status/keys/primary0"):
        response = pages.get(path)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script" not in response.text.lower()
        assert "javascript:" not in response.text


def test_fleet_pictures_are_inline_svg() -> None:
    """The overview has the age histogram (13 bins) and 7 days of hourly bars with failures."""
    tags = Tags(render_html(fleet_snapshot(500, now=NOW)))
    assert tags.count("svg") == 2
    assert tags.count("rect", "bin") == 13
    assert 0 < tags.count("rect", "hour") <= 168
    assert tags.count("rect", "failed") > 0


def test_key_page_shows_one_mark_per_run(pages: Server) -> None:
    """/status/keys/<key> draws a timeline mark per remembered run, coloured by outcome."""
    key = fleet_snapshot(250, now=NOW).keys[3]
    response = pages.get(f"/status/keys/{key.api_key}")
    assert response.status_code == 200
    tags = Tags(response.text)
    assert tags.count("circle", "run") == len(key.recent)
    assert tags.count("circle", "succeeded") + tags.count("circle", "failed") >= len(key.recent) - 1


@pytest.mark.parametrize(
    "segment", ["%3Cscript%3E", "..%2F..%2Fetc", "a" * 65, "sub%00001", "%E2%80%AE"]
)
def test_key_page_refuses_malformed_keys(pages: Server, segment: str) -> None:
    """A path that is not a valid API key is 404, before any lookup."""
    response = pages.get(f"/status/keys/{segment}")
    assert response.status_code == 404
    assert response.json() == {"error": "not a valid API key"}


def test_key_page_404_for_an_unmanaged_key(pages: Server) -> None:
    """A well-formed key the daemon does not manage is 404."""
    assert pages.get("/status/keys/nosuchkey1").status_code == 404


def test_status_routes_answer_only_get(pages: Server) -> None:
    """The key pages are read-only like the rest: POST is 405."""
    response = httpx.post(pages.url + "/status/keys/primary0", timeout=5)
    assert response.status_code == 405


def test_ring_keeps_the_newest_runs_updated_in_place() -> None:
    """The per-key ring is bounded, ordered, and a finished run replaces its running mark."""
    snapshot = fleet_snapshot(1, now=NOW)
    run = snapshot.keys[0].last_run
    assert run is not None
    ring = new_ring()
    for n in range(RECENT_RUNS + 5):
        remember(
            ring,
            replace(run, id=f"r{n}", started_at=NOW + timedelta(hours=n)),
        )
    assert len(ring) == RECENT_RUNS
    assert ring[-1].run_id == f"r{RECENT_RUNS + 4}"
    last = ring[-1]
    finished = replace(run, id=last.run_id, started_at=last.started_at, status=RunStatus.FAILED)
    kept, old = remember(ring, finished)
    assert old is not None
    assert kept is not None
    assert ring[-1].status == RunStatus.FAILED


def test_recent_runs_is_one_grouped_query_bounded_per_key(migrated: World) -> None:
    """Start-up history: every key's newest runs from one windowed query, oldest first."""
    engine = db.make_engine(migrated.database_url)
    audit = AuditLog(engine)
    made: dict[str, list[str]] = {}
    for key, count in (("sub00001", RECENT_RUNS + 3), ("sub00002", 2)):
        for _ in range(count):
            run = audit.start_run(api_key=key, trigger=Trigger.SCHEDULED, actor="t", owner="t")
            audit.finish_run(run.id, RunStatus.SUCCEEDED)
            made.setdefault(key, []).append(run.id)
    runs = recent_runs(engine)
    engine.dispose()
    assert [r.id for r in runs["sub00001"]] == made["sub00001"][-RECENT_RUNS:]
    assert [r.id for r in runs["sub00002"]] == made["sub00002"]


def test_registry_feeds_ring_and_hourly_counts_as_runs_finish() -> None:
    """A refresh that sees a run finish updates the key's ring and the fleet's hourly counts."""
    keys = KeyRegistry()
    keys.replace([Account(api_key="sub00001", primary=False)], NOW)
    run = fleet_snapshot(1, now=NOW).keys[0].last_run
    assert run is not None
    running = replace(run, status=RunStatus.RUNNING, started_at=NOW)
    for seen in (running, replace(running, status=RunStatus.FAILED)):
        keys.apply("sub00001", Facts(due=None, last_success=None, last_run=seen, secret_since=None))
    (status,) = keys.statuses(NOW, {})
    assert [m.status for m in status.recent] == [RunStatus.FAILED]
    hour = keys.hours(NOW + timedelta(minutes=30))[-1]
    assert (hour.runs, hour.failed) == (1, 1)


def test_pages_answers_none_for_other_paths() -> None:
    """The status module claims only its own paths; the server 404s the rest."""
    pages = StatusPages(lambda: fleet_snapshot(1, now=NOW))
    assert pages.answer("/statusx", "", wants_html=True) is None
    assert pages.answer("/status/keys", "", wants_html=True) is None


@pytest.mark.parametrize("module", ["rotator.httpserver", "rotator.statuspage", "rotator.hourly"])
def test_modules_import_on_their_own(module: str) -> None:
    """No import cycle between the server, the page and the daemon, whichever comes first."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_paused_and_stuck_keys_are_states_of_their_own() -> None:
    """A paused key and a stuck key are counted, filtered and listed as needing attention."""
    snap = fleet_snapshot(20, now=NOW)
    keys = list(snap.keys)
    keys[0] = replace(keys[0], paused="until 2024-03-02 (maintenance)")
    keys[1] = replace(keys[1], stuck=True)
    snap = replace(snap, keys=tuple(keys))
    body = status_json(snap, parse_query("state=stuck"))
    assert body["summary"]["paused"] == 1
    assert [k["api_key"] for k in body["keys"]] == [keys[1].api_key]
    assert body["keys"][0]["stuck"] is True
    paused = status_json(snap, parse_query("state=paused"))["keys"]
    assert [(k["api_key"], k["paused"]) for k in paused] == [(keys[0].api_key, keys[0].paused)]


def test_quarantined_keys_are_named_with_why_and_escaped() -> None:
    """Keys rotator refuses to handle appear in a section of their own, every value escaped."""
    snap = replace(
        fleet_snapshot(5, now=NOW), quarantined=(("bad\\x1b<b>", "invalid api key <script>"),)
    )
    page = render_html(snap)
    section = page.split('<table class="quarantined">', 1)[1].split("</table>", 1)[0]
    assert "bad\\x1b&lt;b&gt;" in section
    assert "invalid api key &lt;script&gt;" in section
    assert "<script>" not in section
