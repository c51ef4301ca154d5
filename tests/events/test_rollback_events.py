"""A manual rollback announces itself to consumers through the outbox, like a rotation."""

from __future__ import annotations

import pytest

from rotator.events.deliverer import Deliverer
from rotator.events.outbox import Outbox
from rotator.rollback import rollback
from tests.conftest import SUBACCOUNTS, World
from tests.events.conftest import WHSEC, Receiver

SUB = "sub00001"
SECRET_ENV = "ROTATOR_TEST_EVENTS_SECRET"


def test_rollback_announces_the_revoked_newer_secret_and_the_rollback(
    world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """secret.revoked names the newer secret; rotation.rolled_back ends the undone run."""
    monkeypatch.setenv(SECRET_ENV, WHSEC)
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(
        rotation={"grace_period": "1h"},
        events={
            "endpoints": [
                {"url": receiver.url, "secret_env": SECRET_ENV,
                 "types": ["secret.revoked", "rotation.rolled_back"]}
            ]
        },
    )  # fmt: skip
    services = world.services()
    outcome = services.rotator.rotate(SUB, actor="tester", reason="test")
    rollback(services.rotator.deps, SUB, actor="ops", reason="bad deploy")
    deliverer = Deliverer.from_config(world.config.events, Outbox(services.engine))
    try:
        deliverer.run_once()
    finally:
        deliverer.close()
    kinds = [(e["type"], e["data"].get("secret_id")) for e in receiver.received]
    assert kinds == [
        ("secret.revoked", outcome.run.new_secret_id),
        ("rotation.rolled_back", None),
    ]
    assert receiver.received[1]["data"]["run_id"] == outcome.run.id
