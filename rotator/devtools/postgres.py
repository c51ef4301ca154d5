"""A throwaway PostgreSQL database for the tests, the benchmarks and the chaos harness: created
empty on a server the caller names (or as a copy of a template database), dropped (its
connections cut first) on the way out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def throwaway_database(
    admin_dsn: str, *, prefix: str = "rotator_", template: str | None = None
) -> Iterator[str]:
    """A new database on ``admin_dsn``'s server; yields its SQLAlchemy (psycopg) URL.
    ``template``: the name of a database to copy (nobody may be connected to it meanwhile)."""
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    server = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
