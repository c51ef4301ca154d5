"""Delivery over real HTTP on loopback, verified by the ``standardwebhooks`` package."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from rotator.events.deliverer import Deliverer, EventMetrics
from rotator.events.outbox import Delivery, enqueue
from rotator.events.types import EventType
from tests.events.conftest import Clock, Receiver, endpoint, outbox, rows


def put(engine: Engine, clock: Clock, count: int, where: str = "hooks") -> None:
    with engine.begin() as conn:
        for n in range(count):
            enqueue(conn, where, EventType.SECRET_ROTATED, {"api_key": "k1", "n": n}, at=clock())


def test_deliveries_verify_with_standardwebhooks_and_are_marked_delivered(
    engine: Engine, clock: Clock, receiver: Receiver
) -> None:
    """Every delivery passes the receiver's three-line verification; rows end delivered."""
    put(engine, clock, 2)
    result = Deliverer(outbox(engine, clock), [endpoint(receiver)]).run_once()
    assert (result.delivered, receiver.rejected) == (2, 0)
    assert [(r["type"], r["data"]["n"]) for r in receiver.received] == [
        ("secret.rotated", 0),
        ("secret.rotated", 1),
    ]
    assert [r["status"] for r in rows(engine)] == ["delivered", "delivered"]


def test_a_wrong_key_is_rejected_by_the_receiver(
    engine: Engine, clock: Clock, receiver: Receiver
) -> None:
    """The signature is real: a deliverer with another key is refused and retries later."""
    from rotator.events.deliverer import Endpoint
    from rotator.secret import Secret

    put(engine, clock, 1)
    other = Endpoint("hooks", receiver.url, Secret("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVg=="))
    result = Deliverer(outbox(engine, clock), [other]).run_once()
    assert (result.failed, receiver.rejected, rows(engine)[0]["last_error"]) == (1, 1, "HTTP 400")


def test_a_500_is_retried_after_the_backoff_with_the_same_message_id(
    engine: Engine, clock: Clock, receiver: Receiver
) -> None:
    """A failed attempt waits out its backoff (nothing is sent before), then succeeds."""
    put(engine, clock, 1)
    receiver.fail_next = 1
    deliverer = Deliverer(outbox(engine, clock), [endpoint(receiver)])
    assert deliverer.run_once().failed == 1
    row = rows(engine)[0]
    wait = row["next_attempt_at"] - clock.now
    assert timedelta(seconds=2.5) <= wait <= timedelta(seconds=5)
    assert (row["attempts"], row["last_error"]) == (1, "HTTP 500")
    assert deliverer.run_once().delivered == 0  # not due yet
    clock.advance(timedelta(seconds=5))
    assert deliverer.run_once().delivered == 1
    assert receiver.ids() == [row["message_id"]]


def test_an_endpoints_later_event_waits_for_its_failing_earlier_one(
    engine: Engine, clock: Clock, receiver: Receiver, second_receiver: Receiver
) -> None:
    """Per-endpoint order: event 2 is not sent while event 1 is failing; another endpoint flows."""
    put(engine, clock, 2, "hooks")
    put(engine, clock, 1, "ops")
    receiver.fail_next = 1
    deliverer = Deliverer(
        outbox(engine, clock), [endpoint(receiver, "hooks"), endpoint(second_receiver, "ops")]
    )
    deliverer.run_once()
    assert (receiver.received, len(second_receiver.received)) == ([], 1)
    clock.advance(timedelta(minutes=1))
    deliverer.run_once()
    assert [r["data"]["n"] for r in receiver.received] == [0, 1]


def test_a_deliverer_killed_before_settling_leaves_the_row_for_the_next_one(
    engine: Engine, clock: Clock, receiver: Receiver
) -> None:
    """At least once: a send whose outcome was never recorded is sent again after a restart."""
    put(engine, clock, 2)

    def crash(_: Delivery) -> None:
        raise SystemExit("killed between the POST and the UPDATE")

    with pytest.raises(SystemExit):
        Deliverer(outbox(engine, clock, "first"), [endpoint(receiver)], on_sent=crash).run_once()
    assert [r["status"] for r in rows(engine)] == ["pending", "pending"]
    clock.advance(timedelta(minutes=1))  # the dead deliverer's claim expires
    Deliverer(outbox(engine, clock, "second"), [endpoint(receiver)]).run_once()
    first, second = (r["message_id"] for r in rows(engine))
    assert receiver.ids() == [first, first, second]
    assert [r["status"] for r in rows(engine)] == ["delivered", "delivered"]


def test_unreachable_endpoint_errors_hold_no_url_credentials_or_query(
    engine: Engine, clock: Clock
) -> None:
    """A refused connection is stored as an error without the URL's user, password or token."""
    from rotator.events.deliverer import Endpoint
    from rotator.secret import Secret
    from tests.events.conftest import WHSEC

    put(engine, clock, 1)
    url = "http://hookuser:hookpass@127.0.0.1:9/x?token=qtoken123"
    Deliverer(outbox(engine, clock), [Endpoint("hooks", url, Secret(WHSEC))]).run_once()
    error = rows(engine)[0]["last_error"]
    assert error
    assert [w for w in ("hookuser", "hookpass", "qtoken123", "127.0.0.1:9") if w in error] == []


def test_metrics_report_lag_failures_and_pending(
    engine: Engine, clock: Clock, receiver: Receiver
) -> None:
    """Delivery lag, failed attempts and the pending count reach the Prometheus registry."""
    registry = CollectorRegistry()
    put(engine, clock, 2)
    receiver.fail_next = 1
    deliverer = Deliverer(
        outbox(engine, clock), [endpoint(receiver)], metrics=EventMetrics(registry)
    )
    deliverer.run_once()
    assert registry.get_sample_value("rotator_events_pending") == 2
    clock.advance(timedelta(seconds=30))
    deliverer.run_once()
    labels = {"endpoint": "hooks"}
    assert registry.get_sample_value("rotator_event_delivery_failures_total", labels) == 1
    assert registry.get_sample_value("rotator_event_delivery_lag_seconds_count", labels) == 2
    assert registry.get_sample_value("rotator_event_delivery_lag_seconds_sum", labels) == 60
    assert registry.get_sample_value("rotator_events_pending") == 0


@pytest.mark.postgres
def test_two_deliverers_on_postgresql_never_send_a_row_twice(
    pg_engine: Engine, clock: Clock, receiver: Receiver, second_receiver: Receiver
) -> None:
    """Concurrent replicas claim with SKIP LOCKED: every message arrives exactly once, in order."""
    for where in ("hooks", "ops", "audit"):
        put(pg_engine, clock, 15, where)
    targets = {"hooks": receiver, "ops": second_receiver, "audit": second_receiver}
    go = threading.Barrier(4)
    errors: list[BaseException] = []

    def replica(name: str) -> None:
        deliverer = Deliverer(
            outbox(pg_engine, clock, name),
            [endpoint(r, label) for label, r in targets.items()],
        )
        go.wait()
        try:
            for _ in range(20):
                deliverer.run_once()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(f"r{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = receiver.ids() + second_receiver.ids()
    assert (errors, len(ids), len(set(ids))) == ([], 45, 45)
    assert [r["data"]["n"] for r in receiver.received] == list(range(15))
