"""Property: hostile Vonage listings (secret ids and API keys with '/', '..', '%2e', control
characters, huge strings), spoofed through the simulator's "body" fault, go to rotate, resume,
status, plan and the daemon's discovery; no other key is touched and nothing crashes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.devtools.simulator import Fault
from rotator.discovery import Discovery
from rotator.errors import RotatorError
from rotator.inspection import account_listing, admin_credentials, observe
from rotator.services import Services
from tests.conftest import PRIMARY, World

SUB = "sub00001"
only_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FRAGMENTS = ["/", "..", "%2e", "%2f", "\x00", "\x1b[31m", "\n", "?", "#", " ", "sub00002",
             "../../sub00002/secrets/", "ad6dc56f-07b5-46e1-a527-85530e625800"]  # fmt: skip
hostile = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4).map("".join),
    st.text(max_size=20),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "a" * n),
)


class Crash(Exception):
    """A process dying between steps, leaving its run unfinished (not a RotatorError)."""


def crash_once_after_create() -> Callable[[str], None]:
    armed = [True]

    def boundary(point: str) -> None:
        if point == "after:create" and armed[0]:
            armed[0] = False
            raise Crash(point)

    return boundary


def snapshot(world: World, *keys: str) -> dict[str, list[tuple[str, str]]]:
    return {k: [(s.id, s.value) for s in world.sim.secrets(k)] for k in keys}


def spoof(world: World, path: str, body: object) -> None:
    world.sim.inject(
        Fault(action="body", method="GET", path=path, status=200, body=json.dumps(body), times=None)
    )


def secrets_body(ids: list[str]) -> object:
    items = [{"id": i, "created_at": "2026-01-01T10:00:00Z"} for i in ids]
    return {"_embedded": {"secrets": items}}


def subaccounts_body(keys: list[str]) -> object:
    subs = [{"api_key": k, "name": "x", "suspended": False} for k in keys]
    return {"_embedded": {"subaccounts": subs}}


def read_everything(services: Services, world: World) -> None:
    """status, plan (emergency too) and discovery, as the CLI and the daemon run them."""
    admin = admin_credentials(services)
    keys, _ = account_listing(services, admin)
    for key in keys:
        for emergency in (False, True):
            observe(services, key, admin=admin, emergency=emergency)
    Discovery(
        world.config, audit=services.audit, vault=services.vault, vonage=services.vonage
    ).discover()


@only_sqlite
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ids=st.lists(hostile, min_size=1, max_size=3), keys=st.lists(hostile, max_size=3))
def test_hostile_listings_touch_nothing_else_and_crash_nothing(
    world: World, ids: list[str], keys: list[str]
) -> None:
    """Every other key's secrets are the same before and after; only RotatorErrors surface."""
    world.seed_primary()
    services = world.services(boundary=crash_once_after_create())
    with pytest.raises(Crash):  # leave a run of SUB unfinished, for resume
        services.rotator.rotate(SUB, actor="tester", reason="fuzz")
    others = [k for k in world.sim.accounts() if k != SUB]
    before = snapshot(world, *others)
    spoof(world, f"/accounts/{SUB}/secrets", secrets_body(ids))
    spoof(world, f"/accounts/{PRIMARY}/subaccounts", subaccounts_body([*keys, "sub00002"]))
    try:
        for action in (
            lambda: services.rotator.resume_unfinished(SUB),
            lambda: services.rotator.rotate(SUB, actor="tester", reason="fuzz", emergency=True),
            lambda: read_everything(services, world),
        ):
            with contextlib.suppress(RotatorError):  # a clear refusal; anything else fails
                action()
    finally:
        world.sim.clear_faults()
    assert snapshot(world, *others) == before
