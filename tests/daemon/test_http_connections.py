"""The HTTP server's connection layer played by hostile clients over loopback (issue 11 item 14,
and item 16's port in use): slowloris, too many connections, a GET with a body (request
smuggling behind a proxy), a request line with markup, a port already taken."""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from rotator.errors import ConfigError
from rotator.httpserver import HttpServer, Readiness
from rotator.metrics import Metrics
from rotator.services import Services
from rotator.snapshot import Phase, StatusSnapshot
from tests.conftest import PRIMARY, World
from tests.daemon.conftest import wait_for

STATUS_LINE = re.compile(rb"HTTP/1\.[01] \d{3} ")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: these tests are about connections, not the database."""
    return sqlite_url


@pytest.fixture
def services(world: World) -> Services:
    world.seed_primary()
    return world.services()


def empty_status() -> StatusSnapshot:
    raise RuntimeError("not used by these tests")


def make_server(services: Services, listen: str = "127.0.0.1:0", **limits: float) -> HttpServer:
    readiness = Readiness(
        engine=services.engine,
        vault=services.vault,
        vonage=services.vonage,
        primary_api_key=PRIMARY,
        phase=lambda: Phase.RUNNING,
    )
    return HttpServer(
        listen, metrics=Metrics("test"), status=empty_status, readiness=readiness, **limits
    )


@pytest.fixture
def small(services: Services) -> Iterator[HttpServer]:
    """A server allowing 2 connections of at most 1 s each."""
    server = make_server(services, max_connections=2, connection_deadline=1.0)
    server.start()
    yield server
    server.stop()


def connect(server: HttpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def healthz(server: HttpServer) -> int:
    return httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status_code


def test_a_slowloris_client_is_cut_off_at_the_connection_deadline(small: HttpServer) -> None:
    """A client trickling a header a byte at a time is closed by the server, not kept forever."""
    budget = 400  # bytes at one per 50 ms: 20 s, twenty times the 1 s deadline
    sent, closed = 0, False
    with connect(small) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        while sent < budget and not closed:
            try:
                conn.sendall(b"a")
            except OSError:
                closed = True
                break
            sent += 1
            readable, _, _ = select.select([conn], [], [], 0.05)
            closed = bool(readable) and conn.recv(65536) == b""  # end of stream: hung up
    assert closed, f"the server still listened after {sent} trickled bytes"
    assert sent < budget


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(small: HttpServer) -> None:
    """With the cap taken by idle clients the next one is answered 503; freed, it serves again."""
    with ExitStack() as idle:
        holders = [idle.enter_context(connect(small)) for _ in range(2)]
        holders[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # an unfinished request
        with connect(small) as extra:
            answer = read_all(extra)
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert wait_for(lambda: healthz(small) == 200, what="a free slot again")


def test_a_get_with_a_body_gets_one_answer_and_the_connection_closes(small: HttpServer) -> None:
    """A GET whose body is a second request is refused once; the smuggled request never runs."""
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
    with connect(small) as conn:
        conn.sendall(head + smuggled)
        answer = read_all(conn)
    assert len(STATUS_LINE.findall(answer)) == 1
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"# TYPE" not in answer


def test_a_chunked_get_is_refused_too(small: HttpServer) -> None:
    """Transfer-Encoding on a GET is a body as well: one 400, then the connection closes."""
    with connect(small) as conn:
        conn.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"22\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"
        )
        answer = read_all(conn)
    assert len(STATUS_LINE.findall(answer)) == 1
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /<script>alert(1)</script> HTTP/9.9",
        b"GET /[link=http://evil.example]x[/link] \x1b[31mHTTP/1.1",
        b"<script>alert(1)</script>",
    ],
    ids=["bad-version", "markup-and-escape", "no-method"],
)
def test_a_malformed_request_line_is_not_echoed_and_the_connection_closes(
    small: HttpServer, request_line: bytes
) -> None:
    """A 400 carries a fixed phrase: nothing of the request line, and the server hangs up."""
    with connect(small) as conn:
        conn.sendall(request_line + b"\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        answer = read_all(conn)
    assert re.match(rb"HTTP/1\.1 (400|505) ", answer), answer[:80]
    assert len(STATUS_LINE.findall(answer)) == 1
    for fragment in (b"script", b"link", b"evil", b"\x1b", b"9.9"):
        assert fragment not in answer


def test_a_port_in_use_is_a_configuration_error(services: Services) -> None:
    """Listening on a port another socket holds raises ConfigError naming http.listen."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=r"http\.listen: cannot listen on 127\.0\.0\.1:\d+"):
            make_server(services, f"127.0.0.1:{port}")
