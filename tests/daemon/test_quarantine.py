"""One bad subaccount API key (a spoofed Subaccounts answer) is quarantined: skipped, shown on
/status and in metrics, alerted once; every other key keeps rotating and the daemon runs on."""

from __future__ import annotations

import json
from collections.abc import Callable

from rotator.devtools.simulator import Fault
from rotator.discovery import Discovery
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import FAST, DaemonProcess, open_audit, runs_of, wait_for

BAD = "sub\x1b[31m/../0001"


def spoof_subaccounts(world: World, *keys: str) -> None:
    """The Subaccounts API lists ``keys`` (a compromised or spoofed upstream)."""
    subs = [{"api_key": k, "name": "n", "suspended": False} for k in keys]
    world.sim.inject(
        Fault(
            action="body",
            method="GET",
            path=f"/accounts/{PRIMARY}/subaccounts",
            status=200,
            body=json.dumps({"_embedded": {"subaccounts": subs}}),
            times=None,
        )
    )


def test_discovery_quarantines_a_bad_key_and_keeps_the_rest(world: World) -> None:
    """The invalid key is reported (sanitised) as quarantined; the valid ones are managed."""
    world.seed_primary()
    spoof_subaccounts(world, BAD, *SUBACCOUNTS)
    services = world.services()
    found = Discovery(
        world.config, audit=services.audit, vault=services.vault, vonage=services.vonage
    ).discover()
    assert found.api_keys() == {PRIMARY, *SUBACCOUNTS}
    assert len(found.quarantined) == 1
    assert "\x1b" not in found.quarantined[0]


def test_a_bad_key_is_refused_without_spoiling_the_batch_of_discovery_events(
    world: World,
) -> None:
    """Discovery records every valid key in one batch and nothing of the invalid one, whose
    place in the listing (first, among many) changes nothing: the chain verifies."""
    world.seed_primary()
    many = [f"sub{n:05d}" for n in range(3, 40)]
    spoof_subaccounts(world, BAD, *SUBACCOUNTS, *many)
    services = world.services()
    Discovery(
        world.config, audit=services.audit, vault=services.vault, vonage=services.vonage
    ).discover()
    events = [e for e in services.audit.events() if e.step == "discovery"]
    assert sorted(e.api_key or "" for e in events) == sorted([PRIMARY, *SUBACCOUNTS, *many])
    assert {e.outcome for e in events} == {"added"}
    assert services.audit.verify_chain().ok


def test_the_daemon_quarantines_a_bad_key_and_rotates_every_other(
    pg_world: World, daemons: Callable[..., DaemonProcess]
) -> None:
    """`rotator run` stays up, /status lists the quarantined key, every valid key rotates."""
    pg_world.seed_primary()
    pg_world.configure(**FAST)
    spoof_subaccounts(pg_world, BAD, *SUBACCOUNTS)
    daemon = daemons(pg_world)
    daemon.wait_running()
    audit = open_audit(pg_world)
    for key in [PRIMARY, *SUBACCOUNTS]:
        wait_for(lambda k=key: runs_of(audit, k, "succeeded"), what=f"{key} rotated")
    status = daemon.status()
    assert [q["why"] for q in status["quarantined"]] == ["Vonage listed it with an invalid API key"]
    assert "\x1b" not in json.dumps(status["quarantined"])
    metrics = daemon.get("/metrics").text
    assert "rotator_quarantined_keys 1.0" in metrics
    assert daemon.proc.poll() is None
    quarantined = [e for e in daemon.events() if e.get("event") == "key_quarantined"]
    assert len(quarantined) == 1  # alerted once, though discovery ran again and again
