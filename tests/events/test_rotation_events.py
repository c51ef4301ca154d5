"""Real rotations (simulator, OpenBao, SQLite and PostgreSQL) announce themselves to consumers."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from rotator.audit import AuditLog, RunStatus
from rotator.clock import parse
from rotator.events.deliverer import Deliverer, writer_for
from rotator.events.outbox import Outbox
from rotator.rotation import Rotator
from tests.conftest import World
from tests.events.conftest import WHSEC, Receiver
from tests.secretscan import find, world_secret_values

SUB = "sub00001"
SECRET_ENV = "ROTATOR_TEST_EVENTS_SECRET"


@pytest.fixture
def events_world(world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv(SECRET_ENV, WHSEC)
    world.seed_primary()
    world.configure(events={"endpoints": [{"url": receiver.url, "secret_env": SECRET_ENV}]})
    return world


def rotate(world: World, api_key: str, **kwargs: Any) -> RunStatus:
    """One rotation with the audit log opted in to consumer events (as the daemon wires it)."""
    services = world.services()
    audit = AuditLog(services.engine, outbox=writer_for(world.config))
    rotator = Rotator(
        world.config, vault=services.vault, vonage=services.vonage, audit=audit,
        leases=services.leases,
    )  # fmt: skip
    return rotator.rotate(api_key, actor="tester", reason="test", **kwargs).run.status


def deliver(world: World) -> None:
    services = world.services()
    deliverer = Deliverer.from_config(world.config.events, Outbox(services.engine))
    try:
        deliverer.run_once()
    finally:
        deliverer.close()


def test_a_rotation_announces_the_new_secret_then_the_revoked_one(
    events_world: World, receiver: Receiver
) -> None:
    """secret.rotated names the secret now current in Vault; secret.revoked the old one."""
    old_id = events_world.sim.secret_ids(SUB)[0]
    assert rotate(events_world, SUB) == RunStatus.SUCCEEDED
    deliver(events_world)
    record = events_world.vault_record(SUB)
    assert record is not None
    [rotated, revoked] = receiver.received
    assert (rotated["type"], revoked["type"]) == ("secret.rotated", "secret.revoked")
    assert rotated["data"]["secret_id"] == record["secret_id"]
    assert rotated["data"]["vault_path"] == f"secret/{events_world.prefix}/vonage/{SUB}"
    assert (rotated["data"]["api_key"], rotated["data"]["trigger"]) == (SUB, "manual")
    assert revoked["data"]["secret_id"] == old_id


def test_with_a_grace_period_revoke_after_is_announced_and_nothing_is_revoked_yet(
    events_world: World, receiver: Receiver
) -> None:
    """A deferred revocation: consumers learn when the old secret goes, and it has not gone."""
    events_world.configure(rotation={"grace_period": "1h"})
    assert rotate(events_world, SUB) == RunStatus.AWAITING_REVOKE
    deliver(events_world)
    [rotated] = receiver.received
    wait = parse(rotated["data"]["revoke_after"]) - parse(rotated["data"]["rotated_at"])
    assert wait == timedelta(hours=1)


def test_a_failed_rotation_is_announced_with_its_error(
    events_world: World, receiver: Receiver
) -> None:
    """A rotation of a key Vonage does not know ends failed, and consumers hear of it."""
    assert rotate(events_world, "nosuchkey") == RunStatus.FAILED
    deliver(events_world)
    [failed] = receiver.received
    assert (failed["type"], failed["data"]["api_key"]) == ("rotation.failed", "nosuchkey")
    assert failed["data"]["error"]


def test_no_secret_value_is_in_any_delivered_event(events_world: World, receiver: Receiver) -> None:
    """Payloads carry ids and versions only: no value the world ever held appears in them."""
    rotate(events_world, SUB)
    rotate(events_world, SUB, emergency=True)
    deliver(events_world)
    bodies = {f"event {n}": json.dumps(r) for n, r in enumerate(receiver.received)}
    assert len(bodies) >= 4
    assert find(world_secret_values(events_world) | {"signing secret": WHSEC}, bodies) == []


def test_rotator_events_lists_pending_deliveries_without_url_credentials(
    events_world: World, run_cli: Any
) -> None:
    """`rotator events --json` shows what is undelivered; the URL's secrets appear nowhere."""
    url = "http://hookuser:hookpass@127.0.0.1:9/rotator?token=qtoken123"
    events_world.configure(
        events={"endpoints": [{"url_env": "ROTATOR_TEST_HOOK_URL", "secret_env": SECRET_ENV}]}
    )
    rotate(events_world, "nosuchkey")
    env = {"ROTATOR_TEST_HOOK_URL": url, SECRET_ENV: WHSEC}
    result = run_cli("events", "--json", env=env)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    shown = json.loads(line)
    assert (shown["endpoint"], shown["type"], shown["status"]) == (
        "$ROTATOR_TEST_HOOK_URL", "rotation.failed", "pending",
    )  # fmt: skip
    leaks = ("hookuser", "hookpass", "qtoken123", WHSEC)
    assert [w for w in leaks if w in result.stdout + result.stderr] == []
