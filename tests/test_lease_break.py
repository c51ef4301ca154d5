"""Leases against a skewed clock and a stuck holder: expiry from the database's clock, and
`rotator lease break` / `rotate --emergency --break-lease` (audited)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from rotator import db
from rotator.audit import AuditLog
from rotator.clock import utcnow
from rotator.lease import LeaseLostError, Leases, database_now
from rotator.models import LeaseRow
from tests.conftest import World

SUB = "sub00001"
TTL = timedelta(minutes=5)
OTHER_HOST = "another-host:4242:abcdef01"


def skewed_lease(url: str, api_key: str, ahead: timedelta) -> None:
    """A lease row as a host whose clock runs ``ahead`` would have written it."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    skewed = utcnow() + ahead
    with engine.begin() as c:
        c.execute(
            sa.insert(LeaseRow).values(
                api_key=api_key,
                owner=OTHER_HOST,
                token=7,
                acquired_at=skewed,
                expires_at=skewed + TTL,
            )
        )
    engine.dispose()


def test_a_lease_from_a_host_with_a_skewed_clock_does_not_block(database_url: str) -> None:
    """An expiry a day ahead of the database's clock is no holder's: it is taken at once."""
    skewed_lease(database_url, "k", timedelta(days=1))
    engine = db.make_engine(database_url)
    lease = Leases(engine, ttl=TTL).acquire("k")
    assert lease.token == 8
    engine.dispose()


def test_expiry_is_the_database_clock_plus_ttl(database_url: str) -> None:
    """A lease expires ttl after the database's now, read in the same transaction family."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.connect() as c:
        before = database_now(c)
    lease = Leases(engine, ttl=TTL).acquire("k")
    with engine.connect() as c:
        after = database_now(c)
    assert before + TTL <= lease.expires_at <= after + TTL
    engine.dispose()


def test_breaking_a_lease_fences_its_holder_out(database_url: str) -> None:
    """After break_, the holder's next renew fails: it stops before touching anything."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    holder = Leases(engine, ttl=TTL)
    lease = holder.acquire("k")
    broken = Leases(engine, ttl=TTL).break_("k")
    assert broken is not None
    assert broken.owner == holder.owner
    with pytest.raises(LeaseLostError):
        holder.renew(lease)
    engine.dispose()


def held_by_another_host(world: World, api_key: str) -> None:
    """A live holder on another host, a fresh lease: nothing would take it over."""
    engine = db.make_engine(world.database_url)
    db.upgrade(engine)
    Leases(engine, ttl=timedelta(hours=1), owner=OTHER_HOST).acquire(api_key)
    engine.dispose()


def breaks(world: World) -> list[dict[str, Any]]:
    engine = db.make_engine(world.database_url)
    found = [
        {"actor": e.actor, **(e.detail or {})}
        for e in AuditLog(engine).events(api_key=SUB)
        if e.step == "lease.break"
    ]
    engine.dispose()
    return found


def test_lease_break_command_is_audited(world: World, run_cli: Callable[..., Any]) -> None:
    """`rotator lease break KEY --reason` ends the lease and records who, why and whose."""
    world.seed_primary()
    held_by_another_host(world, SUB)
    result = run_cli("lease", "break", SUB, "--reason", "host gone", "--actor", "ops")
    assert result.returncode == 0, result.stderr
    assert breaks(world) == [
        {
            "actor": "ops",
            "reason": "host gone",
            "holder": OTHER_HOST,
            "token": 1,
            "expires_at": breaks(world)[0]["expires_at"],
            "run_id": None,
        }
    ]


def test_emergency_with_break_lease_rotates_a_key_someone_else_holds(
    world: World, run_cli: Callable[..., Any]
) -> None:
    """`rotate --emergency --break-lease` breaks the stuck lease (audited), then rotates."""
    world.seed_primary()
    held_by_another_host(world, SUB)
    result = run_cli(
        "rotate", SUB, "--emergency", "--break-lease", "--reason", "leak", "--wait", "0"
    )
    assert result.returncode == 0, result.stderr
    assert [b["reason"] for b in breaks(world)] == ["leak"]
    assert world.current_authenticates(SUB)


def test_break_lease_needs_emergency(world: World, run_cli: Callable[..., Any]) -> None:
    """--break-lease alone is a usage error (exit 2): only an emergency may break a lease."""
    result = run_cli("rotate", SUB, "--break-lease", "--reason", "x")
    assert result.returncode == 2
