"""The socket side: two real HTTP/1.1 servers on loopback, and the faults acted out on the wire.

Each request goes latency -> rate limit -> fault -> route, and is recorded in the call log. The
servers accept from one selector thread with a wake-up socket, so ``stop()`` never waits for a
poll interval, and every open connection is tracked so a held or kept-alive connection cannot
outlive the simulator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import selectors
import socket
import socketserver
import struct
import sys
import threading
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

from rotator.devtools.simulator import problems
from rotator.devtools.simulator.faults import Fault
from rotator.devtools.simulator.records import CallRecord, HostName
from rotator.devtools.simulator.routes import Context, Request, Response, dispatch, json_response
from rotator.devtools.simulator.routes import presented_key as _presented_key

MAX_REQUEST_BODY: Final = 1024 * 1024
HUGE_BODY_BYTES: Final = 5 * 1024 * 1024
_JOIN_TIMEOUT: Final = 2.0


class Backend(Protocol):
    """What the HTTP layer needs from the simulator (its shared core implements it)."""

    @property
    def stopping(self) -> threading.Event: ...

    @property
    def latency(self) -> float: ...

    def now(self) -> float: ...

    def context(self) -> Context: ...

    def admit(self) -> int | None: ...

    def take_fault(self, method: str, host: HostName, path: str) -> Fault | None: ...

    def record(self, call: CallRecord) -> None: ...

    def internal_error(self, error: BaseException) -> None: ...


class _BadRequestBody(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclasses.dataclass
class _Exchange:
    """One request on its way through the handler, and whether it is in the call log yet."""

    request: Request
    started: float
    fault: Fault | None = None
    logged: bool = False


class _SimHTTPServer(ThreadingHTTPServer):
    """One host ("api" or "rest"): threads per connection, all of them tracked."""

    daemon_threads = True
    block_on_close = False  # stop() joins with a timeout instead of forever

    def __init__(self, address: tuple[str, int], backend: Backend, host_name: HostName) -> None:
        self.backend = backend
        self.host_name = host_name
        self._live_lock = threading.Lock()
        self._live: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._live_lock:
            self._live[request] = threading.current_thread()
        try:
            if self.backend.stopping.is_set():
                return
            super().process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Never print (the default writes a traceback to stderr); a vanished client is normal."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.backend.internal_error(error)

    def close_connections(self) -> list[threading.Thread]:
        """Cut every open connection so handler threads wake up; returns them for joining."""
        with self._live_lock:
            live = list(self._live.items())
        for conn, _ in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return [thread for _, thread in live]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VonageSimulator/1.0"
    sys_version = ""
    server: _SimHTTPServer
    _request_id: str | None = None

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes; without NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every keep-alive response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence: request lines carry query strings, and query strings can carry secrets."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Every response, even the stdlib's own error pages, gets a fresh X-Request-Id."""
        super().send_response(code, message)
        request_id, self._request_id = self._request_id or uuid.uuid4().hex, None
        self.send_header("X-Request-Id", request_id)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    # -- one request -----------------------------------------------------------------------------

    def _serve(self) -> None:
        backend = self.server.backend
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        exchange = _Exchange(
            request=Request(
                method=self.command,
                host=self.server.host_name,
                path=url.path,
                query={k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()},
                headers=headers,
                body=b"",
                request_id=uuid.uuid4().hex,
            ),
            started=backend.now(),
        )
        try:
            try:
                body = self._read_body(headers)
            except _BadRequestBody as exc:
                self.close_connection = True
                problem = problems.http_problem(exchange.request.request_id, exc.status, str(exc))
                self._send(exchange, json_response(exc.status, problem))
                return
            exchange.request = dataclasses.replace(exchange.request, body=body)
            self._answer(exchange)
        except OSError:
            self.close_connection = True  # the client went away mid-answer
            raise
        finally:
            self._log(exchange, None)  # no-op if the answer was already logged

    def _answer(self, exchange: _Exchange) -> None:
        backend = self.server.backend
        request = exchange.request
        if backend.stopping.is_set() or (
            backend.latency > 0 and backend.stopping.wait(backend.latency)
        ):
            self._hang_up(exchange)
            return
        retry_after = backend.admit()
        if retry_after is not None:
            retry = (("Retry-After", str(retry_after)),)
            self._send(exchange, json_response(429, problems.throttled(request.request_id), retry))
            return
        exchange.fault = backend.take_fault(request.method, request.host, request.path)
        if exchange.fault is not None:
            self._act_out(exchange, exchange.fault)
            return
        self._send(exchange, self._route(request))

    def _route(self, request: Request) -> Response:
        backend = self.server.backend
        try:
            return dispatch(backend.context(), request)
        except Exception as exc:  # a simulator bug: answer 500 and let the tests see it
            backend.internal_error(exc)
            detail = f"simulator error: {type(exc).__name__}"
            return json_response(500, problems.http_problem(request.request_id, 500, detail))

    def _act_out(self, exchange: _Exchange, fault: Fault) -> None:
        rid = exchange.request.request_id
        action = fault.action
        if action == "status":
            self._send(exchange, _status_fault(fault, rid))
        elif action == "timeout":
            self.server.backend.stopping.wait(fault.delay)
            self._hang_up(exchange)
        elif action == "reset_before_apply":
            self._hang_up(exchange, reset=True)
        elif action == "reset_after_apply":
            self._route(exchange.request)  # the change happens; the client never hears about it
            self._hang_up(exchange, reset=True)
        elif action == "html":
            self._send(exchange, _html_fault(fault.status))
        elif action == "malformed_json":
            body = b'{"_links": {"self": {"href": "/accounts/'  # cut off mid-document
            self._send(exchange, Response(status=200, body=body, content_type="application/json"))
        elif action == "huge_body":
            self._send(exchange, _huge_body())
        elif action == "body" and fault.body is not None:
            body = fault.body.encode()
            self._send(
                exchange, Response(status=fault.status, body=body, content_type="application/json")
            )
        else:  # pragma: no cover
            raise AssertionError(f"unhandled fault action {action!r}")

    def _log(self, exchange: _Exchange, status: int | None) -> None:
        """Record the call once, *before* the client can see the outcome, so tests never race."""
        if exchange.logged:
            return
        exchange.logged = True
        backend = self.server.backend
        request = exchange.request
        backend.record(
            CallRecord(
                method=request.method,
                host=request.host,
                path=request.path,
                status=status,
                auth_key=_presented_key(request),
                request_id=request.request_id,
                fault=exchange.fault.action if exchange.fault else None,
                started=exchange.started,
                finished=backend.now(),
            )
        )

    # -- wire helpers ----------------------------------------------------------------------------

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = headers.get("content-length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadRequestBody(400, "Content-Length is not a number") from None
        if size < 0:
            raise _BadRequestBody(400, "Content-Length is negative")
        if size > MAX_REQUEST_BODY:
            raise _BadRequestBody(413, "request body too large")
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequestBody(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY:
                raise _BadRequestBody(413, "request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _send(self, exchange: _Exchange, response: Response) -> None:
        self._log(exchange, response.status)
        self._request_id = exchange.request.request_id
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status >= 200 and response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def _hang_up(self, exchange: _Exchange, *, reset: bool = False) -> None:
        """End the connection without an answer; with ``reset``, abruptly (TCP RST)."""
        self._log(exchange, None)
        self.close_connection = True
        if reset:
            # SO_LINGER 0 makes close() send RST instead of an orderly FIN. Drop the makefile()
            # reference first, or close() would be deferred until the handler finishes.
            with contextlib.suppress(OSError):
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.rfile.close()
                self.connection.close()


def _status_fault(fault: Fault, request_id: str) -> Response:
    headers: tuple[tuple[str, str], ...] = ()
    if fault.retry_after is not None:
        headers = (("Retry-After", str(math.ceil(fault.retry_after))),)
    if fault.status == 429:
        body = problems.throttled(request_id)
    else:
        body = problems.http_problem(request_id, fault.status, "Injected by the Vonage simulator")
    return json_response(fault.status, body, headers)


def _html_fault(status: int) -> Response:
    phrase = HTTPStatus(status).phrase
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Response(status=status, body=page.encode(), content_type="text/html")


def _huge_body() -> Response:
    """Valid JSON, so only a size cap (not a parse error) protects the client."""
    head = json.dumps({"_links": {"self": {"href": "/"}}})[:-1] + ',"padding":"'
    filler = "x" * (HUGE_BODY_BYTES - len(head) - 2)
    return Response(
        status=200, body=(head + filler + '"}').encode(), content_type="application/json"
    )


class HttpFront:
    """Both hosts bound on ``host``, served from one accept thread that ``stop()`` wakes at once."""

    def __init__(self, backend: Backend, *, host: str, api_port: int, rest_port: int) -> None:
        self._backend = backend
        self._servers: list[_SimHTTPServer] = []
        try:
            self._servers.append(_SimHTTPServer((host, api_port), backend, "api"))
            self._servers.append(_SimHTTPServer((host, rest_port), backend, "rest"))
        except OSError:
            for server in self._servers:
                server.server_close()
            raise
        for server in self._servers:
            server.socket.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._accept_loop, name="vonage-sim-accept", daemon=True
        )

    def url(self, host_name: HostName) -> str:
        server = self._servers[0 if host_name == "api" else 1]
        host, port = server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut open connections, close the listening sockets, join briefly."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(_JOIN_TIMEOUT)
        threads: list[threading.Thread] = []
        for server in self._servers:
            server.server_close()
            threads.extend(server.close_connections())
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)
        self._wake_r.close()
        self._wake_w.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for server in self._servers:
                selector.register(server, selectors.EVENT_READ, server)
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            while not self._backend.stopping.is_set():
                for key, _ in selector.select():
                    if key.data is None or self._backend.stopping.is_set():
                        return
                    self._accept(key.data)

    @staticmethod
    def _accept(server: _SimHTTPServer) -> None:
        try:
            request, client_address = server.get_request()
        except OSError:
            return  # the client gave up between select() and accept()
        request.setblocking(True)
        try:
            server.process_request(request, client_address)
        except Exception:
            server.handle_error(request, client_address)
            server.shutdown_request(request)
