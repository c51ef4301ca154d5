"""``rotator lease break``: end a key's lease on an operator's word (audited).

For a lease that blocks every rotation of a key while its holder is gone or cannot be trusted
(another host wedged, a row written by hand). The holder is fenced out: its next step stops it.
``rotate --emergency --break-lease`` does the same before rotating.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rotator.commands.context import api_key_argument, default_actor, get_config

if TYPE_CHECKING:
    from rotator.lease import LeaseInfo
    from rotator.services import Services

lease_app = typer.Typer(help="Inspect and break per-key leases.", no_args_is_help=True)
LEASE_BREAK_STEP = "lease.break"


def break_lease(services: Services, api_key: str, *, actor: str, reason: str) -> LeaseInfo | None:
    """Break ``api_key``'s lease and record who did it, why, and whose lease it was."""
    from rotator.clock import iso, utcnow

    started = utcnow()
    broken = services.leases.break_(api_key)
    services.audit.record(
        step=LEASE_BREAK_STEP,
        outcome="ok" if broken is not None else "none",
        started_at=started,
        api_key=api_key,
        actor=actor,
        detail={
            "reason": reason,
            "holder": broken.owner if broken else None,
            "token": broken.token if broken else None,
            "expires_at": iso(broken.expires_at) if broken else None,
            "run_id": broken.run_id if broken else None,
        },
    )
    return broken


@lease_app.command("break")
def break_command(
    api_key: Annotated[str, typer.Argument(help="The key whose lease to break.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit log.")],
    actor: Annotated[
        str | None, typer.Option(help="Who; defaults to $ROTATOR_ACTOR or the OS user.")
    ] = None,
) -> None:
    """Break a key's lease now (audited); its holder, if alive, stops at its next step."""
    key = api_key_argument(api_key)
    from rotator.services import build

    services = build(get_config())
    try:
        broken = break_lease(services, key, actor=actor or default_actor(), reason=reason)
    finally:
        services.close()
    if broken is None:
        typer.echo(f"{key} had no lease; recorded")
    else:
        typer.echo(f"broke the lease of {key} held by {broken.owner} (token {broken.token})")
