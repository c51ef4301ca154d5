"""``rotator db upgrade``: create or migrate the audit database schema."""

from __future__ import annotations

import typer

from rotator.commands.context import get_config

db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade() -> None:
    """Create or migrate the audit database schema (also done at every start)."""
    from rotator import db

    engine = db.make_engine(get_config().database.url)
    try:
        revision = db.upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"database at revision {revision}")
