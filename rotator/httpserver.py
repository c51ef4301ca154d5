"""The daemon's read-only HTTP side: health, readiness, Prometheus metrics and a status page.

Standard library only (``ThreadingHTTPServer``), bound to localhost unless configured otherwise.
GET only; anything else is 405, unknown paths 404, garbage 400 — and the server keeps serving.
Nothing here can change state or show a secret value; every string on the HTML page is escaped.
"""

from __future__ import annotations

import html
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy.engine import Engine

from rotator import db
from rotator.audit import Run
from rotator.durations import format_duration
from rotator.errors import RotatorError
from rotator.metrics import Metrics
from rotator.notify import scrub
from rotator.snapshot import KeyStatus, LeaseSummary, Phase, StatusSnapshot
from rotator.vault import VaultStore
from rotator.vonage import VonageClient

log = structlog.get_logger("rotator.http")
VONAGE_CHECK_TTL = 60.0  # seconds a Vonage credentials check is reused: probes must not hammer it
REQUEST_TIMEOUT = 10.0  # a client that sends nothing for this long is dropped

StatusSource = Callable[[], StatusSnapshot]


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
        status: StatusSource,
        readiness: Readiness,
        family: socket.AddressFamily,
    ) -> None:
        self.address_family = family
        self.metrics = metrics
        self.status = status
        self.readiness = readiness
        super().__init__(address, _Handler)

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

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/readyz":
                self._readyz()
            elif path == "/metrics":
                body, content_type = self.server.metrics.render(self.headers.get("Accept", ""))
                self._send(200, content_type, body)
            elif path == "/status.html" or (path == "/status" and self._wants_html()):
                page = render_html(self.server.status())
                self._send(200, "text/html; charset=utf-8", page.encode())
            elif path in ("/status", "/status.json"):
                self._json(200, status_json(self.server.status()))
            else:
                self._json(404, {"error": "not found", "paths": list(PATHS)})
        except Exception:
            log.exception("http_handler_failed", path=path[:200])
            self._json(500, {"error": "internal error; see rotator's log"})

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

    def _json(self, status: int, body: Any) -> None:
        data = (json.dumps(body, indent=2, default=str) + "\n").encode()
        self._send(status, "application/json", data)

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
        log.debug("http_request", line=(format % args)[:300])


PATHS = ("/healthz", "/readyz", "/metrics", "/status", "/status.html")


class HttpServer:
    """The server on its own thread; ``port`` is the bound one (``listen`` may ask for 0)."""

    def __init__(
        self, listen: str, *, metrics: Metrics, status: StatusSource, readiness: Readiness
    ) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = _Server(
            (host, int(port)), metrics=metrics, status=status, readiness=readiness, family=family
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


# -- the status page ----------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}tr.fail td{background:#fde8e8;color:#a00}td.fail{color:#a00;font-weight:bold}
td.ok{color:#070}.muted{color:#777}code{font-size:.95em}
"""


def shown(moment: datetime | None) -> str | None:
    """/status shows moments to the second: a contract with whoever scrapes it."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _run_json(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.id,
        "status": str(run.status),
        "trigger": run.trigger,
        "started_at": shown(run.started_at),
        "finished_at": shown(run.finished_at),
        "error": run.error,
    }


def _lease_json(lease: LeaseSummary | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {"owner": lease.owner, "expires_at": shown(lease.expires_at), "active": lease.active}


def _key_json(key: KeyStatus) -> dict[str, Any]:
    return {
        "api_key": key.api_key,
        "name": key.name,
        "primary": key.primary,
        "secret_age_seconds": key.secret_age.total_seconds() if key.secret_age else None,
        "last_success": shown(key.last_success),
        "next_due": shown(key.next_due),
        "grace_until": shown(key.grace_until),
        "rotating_here": key.rotating_here,
        "last_run": _run_json(key.last_run),
        "lease": _lease_json(key.lease),
        "failing": key.failing,
        "error": key.error,
    }


def status_json(status: StatusSnapshot) -> dict[str, Any]:
    """/status as JSON: every managed key, its secret age, last run, next due, lease."""
    return {
        "version": status.version,
        "phase": str(status.phase),
        "owner": status.owner,
        "generated_at": shown(status.generated_at),
        "keys": [_key_json(key) for key in status.keys],
    }


def _age(age: timedelta | None) -> str:
    return "unknown" if age is None else format_duration(age)


def _when(moment: datetime | None, now: datetime) -> str:
    text = shown(moment)
    if moment is None or text is None:
        return "-"
    delta = (moment.replace(microsecond=0) - now.replace(microsecond=0)).total_seconds()
    if abs(delta) < 1:
        return f"{text} (now)"
    return f"{text} ({_age(timedelta(seconds=abs(delta)))} {'from now' if delta > 0 else 'ago'})"


def _grace(until: datetime | None) -> str:
    return f" — postponed: in grace until {shown(until)}" if until is not None else ""


def _row(key: KeyStatus, now: datetime) -> str:
    e = html.escape
    run = key.last_run
    result = str(run.status) if run is not None else "never run"
    cls = "fail" if key.failing else ("ok" if result in ("succeeded", "awaiting_revoke") else "")
    holder = key.lease.owner if key.lease is not None and key.lease.active else "-"
    role = "primary" if key.primary else "subaccount"
    name = f"<br><span class=muted>{e(key.name)}</span>" if key.name else ""
    return (
        f'<tr class="{"fail" if key.failing else ""}">'
        f"<td><code>{e(key.api_key)}</code>{name}</td>"
        f"<td>{e(role)}</td>"
        f"<td>{e(_age(key.secret_age))}</td>"
        f'<td class="{cls}">{e(result)}</td>'
        f"<td>{e(_when(key.next_due, now))}{e(_grace(key.grace_until))}</td>"
        f"<td>{e(holder)}</td>"
        f"<td>{e((run.error if run is not None else None) or '')}</td>"
        "</tr>"
    )


def render_html(status: StatusSnapshot) -> str:
    """The status page: one row per key; failing keys in red. Every value is escaped."""
    e = html.escape
    now = status.generated_at
    keys = status.keys
    rows = [_row(key, now) for key in keys]
    failing_count = sum(1 for k in keys if k.failing)
    summary = (
        f'<p class="fail"><b>{failing_count} of {len(keys)} keys failing</b></p>'
        if failing_count
        else f"<p class=ok>All {len(keys)} keys healthy.</p>"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="30">'
        f"<title>rotator status</title><style>{_CSS}</style></head><body>"
        f"<h1>rotator</h1><p class=muted>version {e(status.version)}, "
        f"{e(str(status.phase))}, as of {e(shown(now) or '')}; "
        f"this process: <code>{e(str(status.owner))}</code></p>"
        f"{summary}"
        "<table><thead><tr><th>API key</th><th>role</th><th>secret age</th><th>last result</th>"
        "<th>next due</th><th>lease holder</th><th>last error</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )


__all__ = ["Check", "HttpServer", "Readiness", "render_html", "status_json"]
