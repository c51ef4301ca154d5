"""Per-key leases in the database, so no two rotations of one key ever overlap — across
processes and machines sharing one PostgreSQL.

A lease has an owner, an expiry and a fencing token that grows on every acquisition: a holder that
stalled past its expiry finds its token gone at its next ``renew`` and stops before touching
anything. An owner on this host whose process is dead is taken over at once rather than waiting
out the expiry.

Every moment a lease records or compares is the *database's* clock (``database_now``), never the
host's: hosts sharing one database then agree on expiry whatever their own clocks say. A lease
*acquired* after the database's now cannot come from a holder using that clock (a host whose
own clock ran ahead wrote it), so it does not block; its holder, if alive, is fenced out at its
next ``renew``.
``break_`` ends a lease on an operator's word (``rotator lease break``).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from rotator.clock import parse, utcnow
from rotator.db import translate_errors
from rotator.errors import LeaseHeldError
from rotator.models import LeaseRow, UTCDateTime


def database_now(conn: Connection) -> datetime:
    """The database's clock, aware UTC (PostgreSQL: ``clock_timestamp()``; SQLite: ``'now'``).

    The leases themselves read it without a statement of its own: PostgreSQL's inside the
    statement that locks or writes the row, SQLite's as ``_sqlite_now`` (the same clock)."""
    if conn.dialect.name == "sqlite":
        query = sa.select(sa.func.strftime("%Y-%m-%d %H:%M:%f", "now"))
    else:
        # clock_timestamp(), not now(): now() is the transaction's start, earlier than a
        # renewal this transaction waited for on the row lock.
        query = sa.select(sa.func.timezone("UTC", sa.func.clock_timestamp()))
    value = conn.execute(query).scalar_one()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return parse(str(value))


def _sqlite_now() -> datetime:
    """SQLite's ``'now'``, read without a query: SQLite reads the calling process's own system
    clock (milliseconds), so on SQLite the database's clock *is* this host's, to the millisecond."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# PostgreSQL's clock, read in the statement that locks or writes a lease (one round trip, not
# two). clock_timestamp(), not now(): now() is the transaction's start, earlier than a renewal
# this transaction waited for on the row lock.
_PG_NOW: Final = sa.func.timezone("UTC", sa.func.clock_timestamp(), type_=sa.DateTime())
_LEASES: Final = LeaseRow.__table__
# The key's lease row locked, then the clock read (after the lock: no renewal can be newer than
# it); one row even when the key has no lease yet.
_LOCK_PG: Final = sa.text(
    "WITH held AS MATERIALIZED (SELECT api_key, owner, token, acquired_at, expires_at, run_id "
    "FROM key_leases WHERE api_key = :key FOR UPDATE) "
    "SELECT held.*, timezone('UTC', clock_timestamp()) AS now "
    "FROM (SELECT 1) AS one LEFT JOIN held ON true"
).columns(
    _LEASES.c.api_key,
    _LEASES.c.owner,
    _LEASES.c.token,
    _LEASES.c.acquired_at,
    _LEASES.c.expires_at,
    _LEASES.c.run_id,
    sa.column("now", UTCDateTime()),
)


# A rotation's lease statements, built once (building one per call cost more CPU than its
# round trip). Binds named apart from the columns they set.
_NEW_LEASE: Final = sa.insert(_LEASES)
_MINE: Final = sa.update(_LEASES).where(
    _LEASES.c.api_key == sa.bindparam("k"), _LEASES.c.token == sa.bindparam("t")
)
_TAKE: Final = _MINE.values(
    owner=sa.bindparam("o"),
    token=sa.bindparam("new_token"),
    acquired_at=sa.bindparam("now", type_=UTCDateTime()),
    expires_at=sa.bindparam("until", type_=UTCDateTime()),
    run_id=None,
)
_RENEWABLE: Final = _MINE.where(_LEASES.c.owner == sa.bindparam("o"))
_TTL: Final = sa.bindparam("ttl", type_=sa.Interval())
_RENEW_PG: Final = _RENEWABLE.values(expires_at=_PG_NOW + _TTL).returning(_LEASES.c.expires_at)
_RENEW_NAMING_PG: Final = _RENEWABLE.values(
    expires_at=_PG_NOW + _TTL, run_id=sa.bindparam("run")
).returning(_LEASES.c.expires_at)
_UNTIL: Final = sa.bindparam("until", type_=UTCDateTime())
_RENEW_SQLITE: Final = _RENEWABLE.values(expires_at=_UNTIL)
_RENEW_NAMING_SQLITE: Final = _RENEWABLE.values(expires_at=_UNTIL, run_id=sa.bindparam("run"))
_RELEASE_PG: Final = _MINE.values(expires_at=_PG_NOW, run_id=None)
_RELEASE_SQLITE: Final = _MINE.values(expires_at=_UNTIL, run_id=None)

CLOCK_SLACK = timedelta(seconds=5)


class LeaseLostError(LeaseHeldError):
    hint = "this process stalled past its lease and another took over; it stopped safely"


def make_owner() -> str:
    """``host:pid:nonce`` — the host and pid let a restarted process detect a dead holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` ran on this host and its process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass(frozen=True, kw_only=True)
class Lease:
    api_key: str
    owner: str
    token: int
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class LeaseInfo:
    api_key: str
    owner: str
    token: int
    expires_at: datetime
    run_id: str | None
    acquired_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.expires_at > utcnow()


class Leases:
    def __init__(self, engine: Engine, *, ttl: timedelta, owner: str | None = None) -> None:
        self.engine = engine
        self.ttl = ttl
        self.owner = owner or make_owner()

    def acquire(
        self,
        api_key: str,
        *,
        wait: timedelta = timedelta(0),
        poll: float = 0.2,
        on_wait: Callable[[LeaseInfo], None] | None = None,
        within: Callable[[Connection], None] | None = None,
    ) -> Lease:
        """Take ``api_key``'s lease, waiting up to ``wait`` for the current holder
        (``on_wait`` is told once who holds it, so a person at a terminal knows why).
        ``within(conn)`` runs in the transaction that takes it, once taken (a rotation reads
        the key's open runs there: one transaction, not two)."""
        deadline = time.monotonic() + wait.total_seconds()
        told = False
        while True:
            lease, holder = self._try_acquire(api_key, within)
            if lease is not None:
                return lease
            if on_wait is not None and holder is not None and not told and wait.total_seconds():
                on_wait(holder)
                told = True
            if time.monotonic() >= deadline:
                assert holder is not None
                raise LeaseHeldError(
                    f"{api_key} is being rotated by {holder.owner} "
                    f"(lease expires {holder.expires_at:%Y-%m-%d %H:%M:%S}Z)"
                )
            time.sleep(poll)

    def _try_acquire(
        self, api_key: str, within: Callable[[Connection], None] | None = None
    ) -> tuple[Lease | None, LeaseInfo | None]:
        with translate_errors("take the key's lease", self.engine):
            try:
                return self._try_acquire_row(api_key, within)
            except IntegrityError:
                pass  # lost an insert race (caught before translate_errors hides it)
        return None, self.holder(api_key)  # the winner holds it

    def _try_acquire_row(
        self, api_key: str, within: Callable[[Connection], None] | None
    ) -> tuple[Lease | None, LeaseInfo | None]:
        with self.engine.begin() as c:
            current, now = self._lock_row(c, api_key)  # now: after the row lock
            if current is None:
                lease = Lease(api_key=api_key, owner=self.owner, token=1, expires_at=now + self.ttl)
                c.execute(
                    _NEW_LEASE,
                    {
                        "api_key": api_key,
                        "owner": self.owner,
                        "token": 1,
                        "acquired_at": now,
                        "expires_at": lease.expires_at,
                    },
                )
                if within is not None:
                    within(c)
                return lease, None
            free = (
                current.expires_at <= now
                or _from_the_future(current, now)
                or current.owner == self.owner
                or owner_is_dead(current.owner)
            )
            if not free:
                return None, current
            lease = Lease(
                api_key=api_key,
                owner=self.owner,
                token=current.token + 1,
                expires_at=now + self.ttl,
            )
            taken = {"k": api_key, "t": current.token, "o": self.owner, "new_token": lease.token}
            c.execute(_TAKE, {**taken, "now": now, "until": lease.expires_at})
            if within is not None:
                within(c)
            return lease, None

    def _lock_row(self, conn: Connection, api_key: str) -> tuple[LeaseInfo | None, datetime]:
        """The key's lease row (None: none yet), locked, and the database's now read after the
        lock (PostgreSQL: in the same statement)."""
        if conn.dialect.name == "sqlite":
            return self._select_for_update(conn, api_key), _sqlite_now()
        row = conn.execute(_LOCK_PG, {"key": api_key}).one()
        return (_info(row) if row.api_key is not None else None), row.now

    def renew(
        self, lease: Lease, *, run_id: str | None = None, conn: Connection | None = None
    ) -> Lease:
        """Extend the lease; raise ``LeaseLostError`` if another owner took it (fencing).
        ``conn``: in that connection's transaction (a run's start names the run on its lease in
        the transaction that records it), else in one of its own."""
        if conn is not None:
            return self._renewed(lease, self._renew(conn, lease, run_id))
        with translate_errors("renew the key's lease", self.engine), self.engine.begin() as c:
            expires_at = self._renew(c, lease, run_id)
        return self._renewed(lease, expires_at)

    def _renew(self, conn: Connection, lease: Lease, run_id: str | None) -> datetime | None:
        """The new expiry, or None when the lease is no longer ``lease`` (fenced out)."""
        mine = {"k": lease.api_key, "t": lease.token, "o": lease.owner, "run": run_id}
        if conn.dialect.name == "sqlite":
            expires_at = _sqlite_now() + self.ttl
            query = _RENEW_SQLITE if run_id is None else _RENEW_NAMING_SQLITE
            updated = conn.execute(query, {**mine, "until": expires_at}).rowcount
            return expires_at if updated == 1 else None
        # the expiry the server wrote, from its clock in this very statement
        query = _RENEW_PG if run_id is None else _RENEW_NAMING_PG
        written: datetime | None = conn.execute(query, {**mine, "ttl": self.ttl}).scalar()
        return written

    def _renewed(self, lease: Lease, expires_at: datetime | None) -> Lease:
        if expires_at is None:
            raise LeaseLostError(f"lost the lease on {lease.api_key} (token {lease.token})")
        return Lease(
            api_key=lease.api_key, owner=lease.owner, token=lease.token, expires_at=expires_at
        )

    def fresh(self, lease: Lease) -> bool:
        """More than 3/4 of the TTL is left: renewed so recently that it cannot have lapsed or
        been taken over, so a renewal now would prove nothing new. A holder that stalled finds
        it stale and renews (fencing); a run renews at most every TTL/4, not at every step."""
        return lease.expires_at - utcnow() > self.ttl * 0.75

    def release(self, lease: Lease, *, conn: Connection | None = None) -> None:
        """Expire the lease now (the row stays, so the fencing token keeps growing); ``conn``:
        in that connection's transaction (a run's end), else in one of its own."""
        if conn is not None:
            self._release(conn, lease)
            return
        with translate_errors("release the key's lease", self.engine), self.engine.begin() as c:
            self._release(c, lease)

    def _release(self, conn: Connection, lease: Lease) -> None:
        mine = {"k": lease.api_key, "t": lease.token}
        if conn.dialect.name == "sqlite":
            conn.execute(_RELEASE_SQLITE, {**mine, "until": _sqlite_now()})
        else:
            conn.execute(_RELEASE_PG, mine)

    def break_(self, api_key: str) -> LeaseInfo | None:
        """End whoever holds ``api_key``'s lease now, and fence it out (its token is bumped,
        so its next ``renew`` fails and it stops). The lease as it was, or None if none."""
        with translate_errors("break the key's lease", self.engine), self.engine.begin() as c:
            current = self._select_for_update(c, api_key)
            if current is None:
                return None
            c.execute(
                sa.update(LeaseRow)
                .where(LeaseRow.api_key == api_key, LeaseRow.token == current.token)
                .values(token=current.token + 1, expires_at=_now_in(c), run_id=None)
            )
        return current

    def holder(self, api_key: str) -> LeaseInfo | None:
        with translate_errors("read the key's lease", self.engine), self.engine.connect() as c:
            row = c.execute(sa.select(LeaseRow).where(LeaseRow.api_key == api_key)).first()
        return _info(row) if row is not None else None

    def all(self) -> list[LeaseInfo]:
        with translate_errors("read leases", self.engine), self.engine.connect() as c:
            return [_info(r) for r in c.execute(sa.select(LeaseRow)).all()]

    def _select_for_update(self, conn: Connection, api_key: str) -> LeaseInfo | None:
        query = sa.select(LeaseRow).where(LeaseRow.api_key == api_key).with_for_update()
        row = conn.execute(query).first()
        return _info(row) if row is not None else None


def _now_in(conn: Connection) -> Any:
    """The database's now as a value to write: PostgreSQL's read by the writing statement."""
    return _sqlite_now() if conn.dialect.name == "sqlite" else _PG_NOW


def _info(row: Any) -> LeaseInfo:
    m = row._mapping
    return LeaseInfo(
        api_key=m["api_key"],
        owner=m["owner"],
        token=m["token"],
        expires_at=m["expires_at"],
        run_id=m["run_id"],
        acquired_at=m["acquired_at"],
    )


def _from_the_future(info: LeaseInfo, now: datetime) -> bool:
    """Acquired after the database's now: written by a host whose clock runs ahead (with the
    database's clock no holder's can be), so no holder's: it does not block."""
    return info.acquired_at is not None and info.acquired_at > now + CLOCK_SLACK
