"""``rotator pause`` and ``rotator resume``: hold a key's scheduled rotations (on every replica)
or lift the hold and clear a ``stuck`` key's failure count."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from rotator.commands.context import api_key_argument, default_actor, get_config, print_json
from rotator.errors import ConfigError


def parse_until(text: str, now: datetime) -> datetime:
    """``--until``: a moment (ISO-8601, UTC if no offset) or a duration from now (``2h``)."""
    from rotator.clock import parse
    from rotator.durations import parse_duration

    try:
        moment = parse(text)
    except ValueError:
        try:
            moment = now + parse_duration(text)
        except ValueError:
            raise ConfigError(
                f"--until {text!r}: give a time (2026-12-01T08:00Z) or a duration (2h, 3d)"
            ) from None
    if moment <= now:
        raise ConfigError(f"--until {text!r} is in the past")
    return moment


def _scope(api_key: str | None, all_keys: bool) -> str | None:
    if (api_key is None) == (not all_keys):
        raise ConfigError("give one API_KEY or --all")
    return None if api_key is None else api_key_argument(api_key)


def pause(
    api_key: Annotated[str | None, typer.Argument(help="The API key to pause.")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Pause every key.")] = False,
    until: Annotated[
        str | None, typer.Option(help="Until when: a UTC time or a duration (default: resume).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who; default $ROTATOR_ACTOR or OS user.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Hold scheduled and manual rotations of a key (emergencies still run), on every replica."""
    scope = _scope(api_key, all_keys)
    if not reason or not reason.strip():
        raise ConfigError("--reason is required (it goes in the audit log)")
    from rotator.clock import utcnow
    from rotator.holds import Holds
    from rotator.services import build

    moment = parse_until(until, utcnow()) if until else None
    services = build(get_config())
    try:
        held = Holds(services.engine, services.audit).pause(
            scope, until=moment, reason=reason.strip()[:500], actor=actor or default_actor()
        )
    finally:
        services.close()
    if as_json:
        print_json(held.to_json())
    else:
        typer.echo(held.describe())


def resume(
    api_key: Annotated[str | None, typer.Argument(help="The API key to resume.")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Resume every key.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who; default $ROTATOR_ACTOR or OS user.")
    ] = None,
) -> None:
    """Lift a pause and clear a stuck key's failure count: automatic rotations start again."""
    scope = _scope(api_key, all_keys)
    from rotator.clock import utcnow
    from rotator.holds import Holds
    from rotator.services import build

    services = build(get_config())
    try:
        holds = Holds(services.engine, services.audit)
        holds.resume(scope, actor=actor or default_actor(), reason=reason)
        still = holds.pause_for(scope, utcnow()) if scope else None
    finally:
        services.close()
    typer.echo(f"resumed {scope or 'every key'}")
    if still is not None:
        typer.echo(f"note: still held by {still.describe()}; `rotator resume --all` lifts it")
