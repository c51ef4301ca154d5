"""Done when (issue 10): applications that cache their secret for less than the grace period
see no 401, across many rotations of the primary and the subaccounts, with propagation delay,
manual rotations and daemon runs mixed (the daemon postpones a key still in its grace)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import hvac
import pytest

from rotator.audit import RunStatus
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.consumers import Application
from tests.daemon.conftest import DaemonProcess, runs_of, wait_for

pytestmark = pytest.mark.postgres
KEYS = [PRIMARY, *SUBACCOUNTS]
ROTATIONS = 3
DONE = {RunStatus.SUCCEEDED, RunStatus.AWAITING_REVOKE}


def vault_reader(world: World, api_key: str) -> Callable[[], str | None]:
    """How the application reads Vault: its own client, the key's current record."""
    client = hvac.Client(url=world.openbao.url, token=world.openbao.root_token.reveal())

    def read() -> str | None:
        record = client.secrets.kv.v2.read_secret_version(
            path=f"{world.prefix}/vonage/{api_key}", mount_point="secret",
            raise_on_deleted_version=True,
        )  # fmt: skip
        value: str = record["data"]["data"]["api_secret"]
        return value

    return read


def test_cached_secrets_never_get_a_401(
    pg_world: World, daemons: Callable[..., DaemonProcess]
) -> None:
    """Apps caching 1.8s under a 2s grace: every key rotates several times, zero refused calls."""
    world = pg_world
    world.sim.propagation_delay = 0.5
    world.configure(rotation={"grace_period": "2s", "verify_timeout": "10s"})
    world.seed_primary(with_id=True)
    for key, secret in SUBACCOUNTS.items():
        world.seed_vault(key, secret, world.sim.secret_ids(key)[0])
    apps = [Application(world.sim.rest_url, k, vault_reader(world, k), cache_for=1.8) for k in KEYS]
    for app in apps:
        app.start()
    daemon = daemons(world)
    services = world.services()
    audit = services.audit
    try:
        daemon.wait_running()
        for key in (PRIMARY, PRIMARY, "sub00001", "sub00001"):  # two in a row, among the daemon's
            outcome = services.rotator.rotate(
                key, actor="operator", reason="manual", lock_wait=timedelta(seconds=20),
                grace_wait=timedelta(seconds=20),
            )  # fmt: skip
            assert outcome.ok
        wait_for(
            lambda: all(len(runs_of(audit, k)) > ROTATIONS and
                        {r.status for r in runs_of(audit, k)} <= DONE for k in KEYS)
            or any(r.status not in DONE | {RunStatus.RUNNING} for k in KEYS
                   for r in runs_of(audit, k)),
            timeout=90, what=f"{ROTATIONS + 1} rotations of every key",
        )  # fmt: skip
    finally:
        for app in apps:
            app.stop()
        daemon.terminate()
    for key in KEYS:
        assert {r.status for r in runs_of(audit, key)} <= DONE | {RunStatus.RUNNING}, key
    for app in apps:
        assert app.refused == [], app.api_key
        assert len(app.seen) > ROTATIONS, app.api_key


def test_the_daemon_postpones_a_key_in_grace_and_says_so(
    pg_world: World, daemons: Callable[..., DaemonProcess]
) -> None:
    """A key due (schedule shortened since) inside its grace: not rotated; /status and /metrics
    name the end of the grace."""
    world = pg_world
    world.seed_primary(with_id=True)
    world.seed_vault("sub00001", SUBACCOUNTS["sub00001"], world.sim.secret_ids("sub00001")[0])
    world.configure(rotation={"grace_period": "30m", "schedule": {"interval": "1h"}})
    first = world.services().rotator.rotate("sub00001", actor="operator", reason="manual")
    assert first.run.status == RunStatus.AWAITING_REVOKE
    world.configure(rotation={"grace_period": "0s", "schedule": {"interval": "1s"}})
    daemon = daemons(world)
    daemon.wait_running()
    status = wait_for(
        lambda: next(k for k in daemon.status()["keys"] if k["api_key"] == "sub00001")
        if len(runs_of(world.services().audit, "sub00002")) >= 2 else None,
        what="the daemon's second round",
    )  # fmt: skip
    metrics = daemon.get("/metrics").text
    daemon.terminate()
    assert status["grace_until"] is not None
    assert status["grace_until"][:19] == first.run.revoke_after.isoformat()[:19]  # type: ignore[union-attr]
    assert 'rotator_grace_until_timestamp_seconds{api_key="sub00001"} 0.0' not in metrics
    assert len(runs_of(world.services().audit, "sub00001")) == 1
    assert first.run.old_secret_id in world.sim.secret_ids("sub00001")
