"""Fixtures for the consumer events tests: a Standard Webhooks receiver on loopback that verifies
every delivery with the ``standardwebhooks`` package, a settable clock, migrated databases."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from rotator import db
from rotator.events.deliverer import Endpoint
from rotator.events.outbox import Outbox
from rotator.models import OutboxRow
from rotator.secret import Secret
from tests.conftest import ensure_migrated

# A fixed test key (whsec_ + base64 of 32 bytes): registered as a secret value for the scan.
WHSEC = "whsec_" + base64.b64encode(b"rotator-events-test-key-32-bytes").decode()
Secret(WHSEC)


@dataclass
class Receiver:
    """Records verified deliveries; answers ``fail_next`` requests with 500 first."""

    secret: str
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    hold: threading.Event | None = None  # set: the first delivery is recorded, then held
    arrived: threading.Event = field(default_factory=threading.Event)

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
            try:
                # The three lines a consumer writes:
                wh = Webhook(self.secret)
                payload = wh.verify(body, headers)
            except WebhookVerificationError:
                self.rejected += 1
                return 400
            self.received.append({"id": headers["webhook-id"], **payload})
            first = not self.arrived.is_set()
            self.arrived.set()
        if first and self.hold is not None:
            self.hold.wait(30)  # the sender is killed meanwhile; it never sees the answer
        return 204

    def ids(self) -> list[str]:
        with self.lock:
            return [r["id"] for r in self.received]


def _serve(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(receiver.handle(body, headers))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/rotator"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A consumer on loopback that verifies each delivery with ``standardwebhooks``."""
    yield from _serve(Receiver(WHSEC))


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver(WHSEC))


class Clock:
    """A settable clock: backoff and leases are tested by moving it, never by sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(database_url: str, migrated_schema: None) -> Iterator[Engine]:
    """A migrated database, SQLite and PostgreSQL."""
    engine = db.make_engine(database_url)
    ensure_migrated(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_url: str, migrated_schema: None) -> Iterator[Engine]:
    engine = db.make_engine(postgres_url)
    ensure_migrated(engine)
    yield engine
    engine.dispose()


def endpoint(receiver: Receiver, label: str = "hooks") -> Endpoint:
    return Endpoint(label, receiver.url, Secret(WHSEC))


def outbox(engine: Engine, clock: Clock, owner: str = "a") -> Outbox:
    return Outbox(engine, owner=owner, clock=clock)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        table = OutboxRow.__table__
        result = conn.execute(sa.select(table).order_by(table.c.id))
        return [dict(r._mapping) for r in result]


def payload(row: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(row["payload"])
    return loaded
