"""Per-key leases on SQLite and PostgreSQL: exclusive, fenced, released, and taken over from a dead
process on this host at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from rotator import db
from rotator.errors import LeaseHeldError
from rotator.lease import LeaseLostError, Leases, owner_is_dead
from tests.conftest import ensure_migrated

TTL = timedelta(minutes=5)
HOST = socket.gethostname()


@pytest.fixture
def engine(database_url: str, migrated_schema: None) -> Iterator[Engine]:
    made = db.make_engine(database_url)
    ensure_migrated(made)
    try:
        yield made
    finally:
        made.dispose()


def leases(engine: Engine, owner: str | None = None, ttl: timedelta = TTL) -> Leases:
    return Leases(engine, ttl=ttl, owner=owner)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_first_acquire_gets_token_one(engine: Engine) -> None:
    """A key never leased before is granted with fencing token 1, recorded with its owner."""
    mine = leases(engine)
    lease = mine.acquire("k")
    assert (lease.api_key, lease.owner, lease.token) == ("k", mine.owner, 1)
    holder = mine.holder("k")
    assert holder is not None
    assert (holder.owner, holder.token, holder.active) == (mine.owner, 1, True)


def test_held_key_is_refused_to_another_owner(engine: Engine) -> None:
    """While one live owner holds a key, another is refused with who holds it."""
    first = leases(engine)
    first.acquire("k")
    with pytest.raises(LeaseHeldError, match=f"k is being rotated by {first.owner}"):
        leases(engine).acquire("k")


def test_other_keys_are_independent(engine: Engine) -> None:
    """Holding one key's lease does not block another key."""
    leases(engine).acquire("k1")
    assert leases(engine).acquire("k2").token == 1


def test_released_key_can_be_taken_with_a_higher_token(engine: Engine) -> None:
    """After release another owner gets the key at once, with a larger fencing token."""
    first = leases(engine)
    lease = first.acquire("k")
    first.release(lease)
    taken = leases(engine).acquire("k")
    assert taken.token == lease.token + 1
    held = first.holder("k")
    assert held is not None
    assert held.owner == taken.owner


def test_expired_lease_is_taken_over(engine: Engine) -> None:
    """A lease past its expiry (a stalled holder) may be taken by someone else."""
    stalled = leases(engine, ttl=timedelta(0))
    stalled.acquire("k")
    assert leases(engine).acquire("k").token == 2


def test_renew_after_a_takeover_is_refused(engine: Engine) -> None:
    """A holder that lost its lease finds out at its next renew and must stop (fencing)."""
    stalled = leases(engine, ttl=timedelta(0))
    lease = stalled.acquire("k")
    leases(engine).acquire("k")
    with pytest.raises(LeaseLostError, match="lost the lease on k"):
        stalled.renew(lease)


def test_lease_lost_is_a_lease_held_error(engine: Engine) -> None:
    """Callers that stop on LeaseHeldError also stop on LeaseLostError."""
    assert issubclass(LeaseLostError, LeaseHeldError)


def test_renew_extends_the_lease_and_records_the_run(engine: Engine) -> None:
    """Renewing moves the expiry forward and can attach the run the holder is working on."""
    mine = leases(engine)
    lease = mine.acquire("k")
    renewed = mine.renew(lease, run_id="run-1")
    assert renewed.expires_at >= lease.expires_at
    assert renewed.token == lease.token
    holder = mine.holder("k")
    assert holder is not None
    assert holder.run_id == "run-1"


def test_release_by_a_fenced_out_holder_does_not_free_the_new_lease(engine: Engine) -> None:
    """A late release with an old token leaves the new holder's lease alone."""
    stalled = leases(engine, ttl=timedelta(0))
    old = stalled.acquire("k")
    new_owner = leases(engine)
    new_owner.acquire("k")
    stalled.release(old)
    with pytest.raises(LeaseHeldError):
        leases(engine).acquire("k")


def test_same_owner_may_reacquire(engine: Engine) -> None:
    """A process that already holds a key (e.g. resuming, then rotating) gets it again."""
    mine = leases(engine)
    first = mine.acquire("k")
    assert mine.acquire("k").token == first.token + 1


def test_dead_owner_on_this_host_is_taken_over_at_once(engine: Engine) -> None:
    """A holder whose process died (SIGKILL, OOM) does not block the key until its TTL ends."""
    leases(engine, owner=f"{HOST}:{dead_pid()}:abcd").acquire("k")
    assert leases(engine).acquire("k").token == 2


def test_live_owner_on_another_host_is_respected(engine: Engine) -> None:
    """Another machine's process cannot be checked from here, so only expiry frees its lease."""
    leases(engine, owner=f"elsewhere.example:{dead_pid()}:abcd").acquire("k")
    with pytest.raises(LeaseHeldError):
        leases(engine).acquire("k")


def test_acquire_waits_for_a_release(engine: Engine) -> None:
    """With a wait, acquire polls until the holder releases, then takes the key."""
    first = leases(engine)
    lease = first.acquire("k")
    got: list[int] = []
    waiter = threading.Thread(
        target=lambda: got.append(leases(engine).acquire("k", wait=timedelta(seconds=30)).token)
    )
    waiter.start()
    first.release(lease)
    waiter.join(timeout=60)
    assert got == [2]


def test_two_threads_never_hold_one_key_at_once(engine: Engine) -> None:
    """Competing holders in threads take turns: no moment with two holders of a key."""
    holding: set[str] = set()
    overlaps: list[str] = []
    turns: list[str] = []
    guard = threading.Lock()

    def contend(name: str) -> None:
        mine = leases(engine)
        for _ in range(5):
            lease = mine.acquire("k", wait=timedelta(seconds=60), poll=0.01)
            with guard:
                if holding:
                    overlaps.append(f"{name} with {holding}")
                holding.add(name)
                turns.append(name)
            mine.renew(lease)
            with guard:
                holding.discard(name)
            mine.release(lease)

    threads = [threading.Thread(target=contend, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert overlaps == []
    assert len(turns) == 15
    holder = leases(engine).holder("k")
    assert holder is not None
    assert holder.token == 15


def test_all_lists_every_lease(engine: Engine) -> None:
    """all() shows every key's lease, held or released."""
    mine = leases(engine)
    mine.release(mine.acquire("k1"))
    mine.acquire("k2")
    assert sorted((i.api_key, i.active) for i in mine.all()) == [("k1", False), ("k2", True)]


# -- owner_is_dead (no database) ---------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_owner_liveness_is_judged_only_for_this_host(database_url: str) -> None:
    """Dead: a reaped pid on this host. Alive: this process, another host, or a malformed owner."""
    assert owner_is_dead(f"{HOST}:{dead_pid()}:x")
    assert not owner_is_dead(f"{HOST}:{os.getpid()}:x")
    assert not owner_is_dead(f"other-host:{dead_pid()}:x")
    assert not owner_is_dead("garbage")
    assert not owner_is_dead(f"{HOST}:notapid:x")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_killed_but_unreaped_owner_counts_as_dead(database_url: str) -> None:
    """A zombie (killed, not yet waited for by its parent) holds nothing."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not owner_is_dead(f"{HOST}:{proc.pid}:x")
        proc.kill()
        deadline = time.monotonic() + 30
        while not owner_is_dead(f"{HOST}:{proc.pid}:x"):
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
