"""``rotator events``: consumer event deliveries not yet delivered (pending, or failing with the
last error), oldest first. Read-only; the daemon delivers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rotator.commands.context import console, get_config

if TYPE_CHECKING:
    from rotator.events.outbox import Delivery


def _table(rows: list[Delivery]) -> Any:
    from rich.table import Table

    from rotator.escape import markup as m
    from rotator.redact import scrub

    table = Table("id", "endpoint", "type", "api key", "attempts", "next attempt", "last error")
    for d in rows:
        table.add_row(
            str(d.id),
            m(d.endpoint),
            m(d.event_type),
            m(d.api_key or "-"),
            str(d.attempts),
            d.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S"),
            m(scrub(d.last_error or "")),
        )
    return table


def list_deliveries(*, failed: bool, limit: int) -> list[Delivery]:
    """What the command shows."""
    from rotator.events.outbox import Outbox
    from rotator.services import open_database

    engine = open_database(get_config(), migrate=False)
    try:
        return Outbox(engine).list(failed_only=failed, limit=limit)
    finally:
        engine.dispose()


def events(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only deliveries whose last attempt failed.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List consumer event deliveries that are pending or failing (exit 0 either way)."""
    rows = list_deliveries(failed=failed, limit=limit)
    if as_json:
        for d in rows:
            typer.echo(json.dumps(d.to_json(), sort_keys=True))
        return
    if not rows:
        typer.echo("no pending event deliveries")
        return
    console().print(_table(rows))
