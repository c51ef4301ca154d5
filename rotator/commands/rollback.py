"""``rotator rollback API_KEY --reason TEXT``: go back to the previous secret (grace period)."""

from __future__ import annotations

from typing import Annotated

import typer

from rotator.commands.context import (
    api_key_argument,
    default_actor,
    get_config,
    print_json,
    run_line,
)


def rollback(
    api_key: Annotated[str, typer.Argument(help="The API key whose last rotation to undo.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit log.")],
    actor: Annotated[
        str | None, typer.Option(help="Who; defaults to $ROTATOR_ACTOR or the OS user.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Make the previous secret current again and revoke the newer one. Only inside the grace
    period (while the previous secret is still on Vonage); exit 2 once it is gone."""
    from rotator import rollback as undo
    from rotator.services import build

    key = api_key_argument(api_key)
    services = build(get_config())
    try:
        run = undo.rollback(
            services.rotator.deps, key, actor=actor or default_actor(), reason=reason
        )
    finally:
        services.close()
    if as_json:
        print_json(run.to_json())
    else:
        typer.echo(f"rolled back  {run_line(run)}")
