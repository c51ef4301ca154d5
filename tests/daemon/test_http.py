"""The daemon's read-only HTTP server on loopback: routes, refusals, garbage, readiness."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rotator.audit import Run, RunStatus
from rotator.httpserver import HttpServer, Readiness, render_html
from rotator.metrics import Metrics
from rotator.services import Services
from rotator.snapshot import KeyStatus, LeaseSummary, Phase, StatusSnapshot
from tests.conftest import PRIMARY, World

EVIL = "<script>alert(1)</script>"


T0 = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def status_doc() -> StatusSnapshot:
    failed = Run(
        id="r-1",
        api_key="sub00001",
        trigger="scheduled",
        reason=None,
        actor="rotator-daemon",
        status=RunStatus.FAILED,
        emergency=False,
        old_secret_id=None,
        new_secret_id=None,
        started_at=T0 - timedelta(minutes=5),
        finished_at=T0 - timedelta(minutes=4),
        revoke_after=None,
        error=f"VonageAuthError: {EVIL}",
        owner="other:2:def",
    )
    return StatusSnapshot(
        version="test",
        phase=Phase.RUNNING,
        owner="host:1:abc",
        generated_at=T0,
        keys=(
            KeyStatus(
                api_key=PRIMARY,
                name=None,
                primary=True,
                secret_age=timedelta(hours=1),
                last_success=T0 - timedelta(hours=1),
                next_due=T0 + timedelta(days=1),
                rotating_here=False,
                last_run=None,
                lease=None,
                error=None,
            ),
            KeyStatus(
                api_key="sub00001",
                name=EVIL,
                primary=False,
                secret_age=None,
                last_success=None,
                next_due=T0 + timedelta(minutes=15),
                rotating_here=True,
                last_run=failed,
                lease=LeaseSummary(owner="other:2:def", expires_at=T0, active=True),
                error=None,
            ),
        ),
    )


class Server:
    def __init__(self, services: Services, status: Callable[[], StatusSnapshot]) -> None:
        self.phase = Phase.RUNNING
        self.metrics = Metrics("test")
        self.readiness = Readiness(
            engine=services.engine,
            vault=services.vault,
            vonage=services.vonage,
            primary_api_key=PRIMARY,
            phase=lambda: self.phase,
        )
        self.http = HttpServer(
            "127.0.0.1:0", metrics=self.metrics, status=status, readiness=self.readiness
        )
        self.http.start()
        self.url = f"http://127.0.0.1:{self.http.port}"

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=headers, timeout=5)

    def raw(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.http.port), timeout=5) as conn:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: these tests are about HTTP, not the database."""
    return sqlite_url


@pytest.fixture
def services(world: World) -> Services:
    world.seed_primary()
    return world.services()


@pytest.fixture
def server(services: Services) -> Iterator[Server]:
    s = Server(services, status_doc)
    yield s
    s.http.stop()


def test_healthz_answers_ok(server: Server) -> None:
    """/healthz says the process is alive."""
    response = server.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


def test_metrics_are_prometheus_text(server: Server) -> None:
    """/metrics serves the daemon's own registry in the Prometheus text format."""
    response = server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "rotator_up 1.0" in response.text
    assert "python_gc_objects_collected_total" not in response.text, "not the global registry"


def test_status_is_json_by_default(server: Server) -> None:
    """/status without Accept: text/html is the JSON document."""
    response = server.get("/status")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["keys"][0]["api_key"] == PRIMARY


def test_status_json_keeps_its_fields_and_second_precision(server: Server) -> None:
    """/status names its fields as before and shows moments as UTC ISO to the second."""
    body = server.get("/status").json()
    assert body["generated_at"] == "2024-01-01T12:00:00+00:00"
    assert body["phase"] == "running"
    primary, sub = body["keys"]
    assert primary["secret_age_seconds"] == 3600
    assert primary["next_due"] == "2024-01-02T12:00:00+00:00"
    assert sub["last_run"] == {
        "run_id": "r-1",
        "status": "failed",
        "trigger": "scheduled",
        "started_at": "2024-01-01T11:55:00+00:00",
        "finished_at": "2024-01-01T11:56:00+00:00",
        "error": f"VonageAuthError: {EVIL}",
    }
    lease = {"owner": "other:2:def", "expires_at": "2024-01-01T12:00:00+00:00", "active": True}
    assert sub["lease"] == lease
    assert (sub["failing"], sub["rotating_here"], sub["secret_age_seconds"]) == (True, True, None)


def test_status_is_html_for_a_browser(server: Server) -> None:
    """A browser's Accept header (or /status.html) gets the page."""
    for response in (
        server.get("/status", Accept="text/html,application/xhtml+xml"),
        server.get("/status.html"),
    ):
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert '<table class="keys">' in response.text


def test_status_page_escapes_everything(server: Server) -> None:
    """Names and errors from outside (Vonage, the database) cannot inject markup."""
    page = server.get("/status.html").text
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert (
        server.get("/status.html")
        .headers["content-security-policy"]
        .startswith("default-src 'none'")
    )


def test_status_page_shows_failures_in_red() -> None:
    """The failing key's row has the red class and the summary counts it."""
    page = render_html(status_doc())
    assert '<tr class="fail"><td><a href="/status/keys/sub00001"><code>sub00001</code>' in page
    assert "1 of 2 keys failing" in page


def test_unknown_path_is_404(server: Server) -> None:
    """Anything but the status paths is 404."""
    assert server.get("/admin").status_code == 404
    assert server.get("/../../etc/passwd").status_code == 404


def test_other_methods_are_405(server: Server) -> None:
    """The server is read-only: every method but GET is refused with 405 and Allow: GET."""
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW"):
        response = httpx.request(method, server.url + "/metrics", timeout=5)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET"


GARBAGE = [
    b"\x00\xff\xfe garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n<script>",
    b"",
]


def test_garbage_requests_do_not_stop_the_server(server: Server) -> None:
    """Malformed requests get a short error answer (or none) and the server keeps serving."""
    for garbage in GARBAGE:
        answer = server.raw(garbage)
        assert answer == b"" or re.match(rb"(HTTP/1\.[01] )?[2345]\d\d ", answer), answer[:80]
        assert b"<" not in answer.partition(b"\r\n\r\n")[0]
        assert server.get("/healthz").status_code == 200


def test_a_failing_status_source_is_500_not_a_crash(services: Services) -> None:
    """A bug behind /status answers 500 without details, and the server stays up."""

    def broken() -> StatusSnapshot:
        raise RuntimeError("bug with a detail that must not leak")

    s = Server(services, broken)
    try:
        response = s.get("/status")
        assert response.status_code == 500
        assert "must not leak" not in response.text
        assert s.get("/healthz").status_code == 200
    finally:
        s.http.stop()


def test_readyz_is_200_when_everything_checks_out(server: Server) -> None:
    """Database migrated, Vault unsealed with a token, primary credentials valid: ready."""
    response = server.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {"daemon", "database", "vault", "vonage"}


def test_readyz_is_503_while_starting(server: Server) -> None:
    """Until the daemon has resumed runs and scheduled the keys it is not ready."""
    server.phase = Phase.STARTING
    response = server.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["daemon"] == {"ok": False, "detail": "starting"}


def test_readyz_caches_the_vonage_check(world: World, server: Server) -> None:
    """Probes every few seconds do not hammer Vonage: one credentials check per minute."""
    world.sim.reset_calls()
    for _ in range(3):
        assert server.get("/readyz").status_code == 200
    balance = [c for c in world.sim.calls if c.path == "/account/get-balance"]
    assert len(balance) == 1


def test_readyz_is_503_when_the_primary_secret_is_wrong(world: World, services: Services) -> None:
    """A primary secret Vonage refuses makes the daemon unready, saying which check failed."""
    world.seed_vault(PRIMARY, "Wrong1Secret")
    s = Server(services, status_doc)
    try:
        response = s.get("/readyz")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["vonage"]["ok"] is False
        assert checks["database"]["ok"]
        assert checks["vault"]["ok"]
        assert "Wrong1Secret" not in response.text
    finally:
        s.http.stop()
