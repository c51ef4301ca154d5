"""The daemon's read-only HTTP side: health, readiness, Prometheus metrics and a status page.

Standard library only (``ThreadingHTTPServer``), bound to localhost unless configured otherwise.
GET only; anything else is 405, unknown paths 404, garbage 400 — and the server keeps serving.
Nothing here can change state or show a secret value; every string on the HTML page is escaped.
The one exception, off by default: the authenticated control API (``rotator.control``) under
``/v1/``, whose POSTs may carry a JSON body of at most ``http.control.max_body`` bytes.

The connection layer treats every client as hostile: at most ``max_connections`` at once (the
next one gets a 503 and is closed), each connection lives at most ``connection_deadline`` in total
however slowly it trickles bytes, a request with a body is refused and the connection closed (so
the body can never be read as a second request behind a proxy; a control POST's body is read to
exactly its Content-Length, never chunked), and an error answer is a fixed
phrase that echoes nothing of the request, after which the connection is closed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy.engine import Engine

from rotator import db
from rotator.control import Call, ControlApi
from rotator.errors import ConfigError, RotatorError
from rotator.escape import terminal
from rotator.metrics import Metrics
from rotator.redact import scrub
from rotator.snapshot import Phase
from rotator.statuspage import StatusPages, StatusSource, StepsSource, render_html, status_json
from rotator.vault import VaultStore
from rotator.vonage import VonageClient

log = structlog.get_logger("rotator.http")
VONAGE_CHECK_TTL = 60.0  # seconds a Vonage credentials check is reused: probes must not hammer it
REQUEST_TIMEOUT = 10.0  # a client that sends nothing for this long is dropped
CONNECTION_DEADLINE = 30.0  # a connection is closed this long after it was accepted, whatever
MAX_CONNECTIONS = 32  # connections handled at once; the next one is answered 503 and closed
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy\n"
)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class Readiness:
    """Database migrated, Vault unsealed with a working token, the primary's credentials valid."""

    def __init__(
        self,
        *,
        engine: Engine,
        vault: VaultStore,
        vonage: VonageClient,
        primary_api_key: str,
        phase: Callable[[], Phase],
        vonage_ttl: float = VONAGE_CHECK_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._vault = vault
        self._vonage = vonage
        self._primary = primary_api_key
        self._phase = phase
        self._ttl = vonage_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._vonage_result: tuple[float, Check] | None = None

    def check(self) -> tuple[bool, dict[str, Check]]:
        phase = self._phase()
        checks = {
            "daemon": Check(phase == Phase.RUNNING, str(phase)),
            "database": self._guard(lambda: db.require_migrated(self._engine), "migrated"),
            "vault": self._guard(self._vault.health, "unsealed, token valid"),
            "vonage": self._vonage_check(),
        }
        return all(c.ok for c in checks.values()), checks

    def _vonage_check(self) -> Check:
        with self._lock:
            now = self._clock()
            if self._vonage_result is not None and now - self._vonage_result[0] < self._ttl:
                return self._vonage_result[1]
            result = self._guard(self._check_primary, "primary credentials valid")
            self._vonage_result = (now, result)
            return result

    def _check_primary(self) -> None:
        self._vonage.get_balance(self._vault.credentials(self._primary))

    @staticmethod
    def _guard(check: Callable[[], object], ok: str) -> Check:
        try:
            check()
        except RotatorError as exc:
            return Check(False, scrub(str(exc))[:500])
        return Check(True, ok)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        metrics: Metrics,
        pages: StatusPages,
        readiness: Readiness,
        family: socket.AddressFamily,
        control: ControlApi | None = None,
        max_body: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        connection_deadline: float = CONNECTION_DEADLINE,
    ) -> None:
        self.address_family = family
        self.control = control
        self.max_body = max_body
        self.metrics = metrics
        self.pages = pages
        self.readiness = readiness
        self.connection_deadline = connection_deadline
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread if a slot is free; otherwise answer 503 and close."""
        if not self._slots.acquire(blocking=False):
            log.warning("http_too_many_connections")
            with contextlib.suppress(OSError):
                request.settimeout(0)  # the accept loop never waits on a client
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("http_request_error", client=str(client_address[0]) if client_address else "")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rotator"
    sys_version = ""
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"  # for garbage: short, and echoes nothing
    _has_body = False
    _expiry: threading.Timer | None = None

    # -- the connection layer ------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # however slowly a client trickles bytes, the connection ends at the deadline: shutting
        # the socket down wakes the blocked read, which then sees the end of the stream
        self._expiry = threading.Timer(self.server.connection_deadline, self._expire)
        self._expiry.daemon = True
        self._expiry.start()

    def _expire(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        super().finish()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # no status line, no headers: refuse, not serve
            self.send_error(400)
            return False
        length = self.headers.get("Content-Length")
        self._has_body = "Transfer-Encoding" in self.headers or length not in (None, "0")
        if self._has_body:
            self.close_connection = True  # the body is never read, so it can never be parsed
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A fixed phrase for the code (never the request line or a header), then close."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a status line even for garbage
        phrase = self.responses.get(code, ("Error", ""))[0]
        super().send_error(code, phrase, "")

    # -- the routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._has_body:
            self._json(400, {"error": "a GET has no body; the connection is closed"})
            return
        url = urlsplit(self.path)
        path = url.path
        try:
            if path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/readyz":
                self._readyz()
            elif path == "/metrics":
                body, content_type = self.server.metrics.render(self.headers.get("Accept", ""))
                self._send(200, content_type, body)
            elif page := self.server.pages.answer(path, url.query, wants_html=self._wants_html()):
                self._send(page.status, page.content_type, page.body)
            elif answer := self._control(path, b""):
                self._json(answer.status, answer.body, answer.headers)
            else:
                self._json(404, {"error": "not found", "paths": list(PATHS)})
        except Exception:
            log.exception("http_handler_failed", path=path[:200])
            self._json(500, {"error": "internal error; see rotator's log"})

    def do_POST(self) -> None:
        """The control API's writes (when enabled): the one place a request body is read."""
        path = urlsplit(self.path).path
        control = self.server.control
        if control is None or not path.startswith("/v1/"):
            self._not_allowed()
            return
        try:
            body = self._read_body()
            call = self._call(path, body or b"")
            answer = control.too_large(call) if body is None else control.answer(call)
            if answer is None:
                self._json(404, {"error": "not found"})
            else:
                self._json(answer.status, answer.body, answer.headers)
        except _BadBody as exc:
            self._json(400, {"error": str(exc)})
        except Exception:
            log.exception("http_handler_failed", path=path[:200])
            self._json(500, {"error": "internal error; see rotator's log"})

    def _read_body(self) -> bytes | None:
        """Exactly Content-Length bytes (None: more than max_body, left unread); no chunking.
        The connection is closed after the answer either way."""
        self.close_connection = True
        if "Transfer-Encoding" in self.headers:
            raise _BadBody("send a Content-Length, not Transfer-Encoding")
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit() or len(text) > 9:
            raise _BadBody("Content-Length must be a number of bytes")
        length = int(text)
        if length > self.server.max_body:
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:  # the client stopped, or the connection deadline cut it off
            raise _BadBody("the body ended before Content-Length bytes")
        return body

    def _control(self, path: str, body: bytes) -> Any:
        control = self.server.control
        return control.answer(self._call(path, body)) if control is not None else None

    def _call(self, path: str, body: bytes) -> Call:
        return Call(
            method=self.command,
            path=path,
            token=self.headers.get("X-Vault-Token"),
            body=body,
            client=str(self.client_address[0]) if self.client_address else "",
        )

    def __getattr__(self, name: str) -> Any:
        # Every other method (POST, PUT, HEAD, BREW...) is refused the same way.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._send(
            405,
            "application/json",
            b'{"error": "method not allowed; this server is read-only"}\n',
            extra={"Allow": "GET"},
        )

    def _readyz(self) -> None:
        ready, checks = self.server.readiness.check()
        body = {"ready": ready, "checks": {k: c.to_json() for k, c in checks.items()}}
        self._json(200 if ready else 503, body)

    def _wants_html(self) -> bool:
        accept = self.headers.get("Accept", "") or ""
        return "text/html" in accept.lower()

    def _json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = (json.dumps(body, indent=2, default=str) + "\n").encode()
        self._send(status, "application/json", data, extra)

    def _send(
        self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http_request", line=terminal((format % args)[:300]))


class _BadBody(Exception):
    """A control request whose body cannot be read safely (400, connection closed)."""


PATHS = ("/healthz", "/readyz", "/metrics", "/status", "/status.html", "/status/keys/<api_key>")


class HttpServer:
    """The server on its own thread; ``port`` is the bound one (``listen`` may ask for 0)."""

    def __init__(
        self,
        listen: str,
        *,
        metrics: Metrics,
        status: StatusSource,
        readiness: Readiness,
        steps: StepsSource | None = None,
        control: ControlApi | None = None,
        max_body: int = 0,
        tls: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS,
        connection_deadline: float = CONNECTION_DEADLINE,
    ) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._server = _Server(
                (host, int(port)),
                metrics=metrics,
                pages=StatusPages(status, steps),
                readiness=readiness,
                family=family,
                control=control,
                max_body=max_body,
                max_connections=max_connections,
                connection_deadline=connection_deadline,
            )
        except (OSError, ValueError, OverflowError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid"
            raise ConfigError(
                f"http.listen: cannot listen on {listen}: {reason}",
                hint="choose a free port in http.listen, or stop the process that holds it",
            ) from None
        if tls is not None:  # the handshake happens in the connection's thread, on first read
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long stop() may wait
            name="rotator-http",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http_listening", host=self.host, port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


__all__ = ["Check", "HttpServer", "Readiness", "render_html", "status_json"]
