"""``rotator rotate``: one key, or ``--all``; ``--emergency``; ``--dry-run``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from rotator.clock import iso
from rotator.commands.context import (
    api_key_argument,
    default_actor,
    get_config,
    print_json,
    run_line,
)
from rotator.errors import ConfigError

if TYPE_CHECKING:
    from rotator.lease import LeaseInfo
    from rotator.rotation import Outcome
    from rotator.services import Services

EMERGENCY_WAIT = 300.0


def rotate(
    api_key: Annotated[
        str | None, typer.Argument(help="The API key to rotate (primary or subaccount).")
    ] = None,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Every key of the account: subaccounts, then primary.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who; defaults to $ROTATOR_ACTOR or the OS user.")
    ] = None,
    emergency: Annotated[
        bool,
        typer.Option(help="Skip the grace period and revoke every other secret of the key."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
    ] = False,
    wait: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait for a rotation in progress, or for the previous secret's "
            "grace period to end (default: rotation.lock_wait, and no wait for a grace period: "
            f"exit 4 naming when it ends; {EMERGENCY_WAIT:g} with --emergency)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    break_lease: Annotated[
        bool,
        typer.Option(
            "--break-lease",
            help="With --emergency and one API_KEY: break the key's lease first (audited).",
        ),
    ] = False,
) -> None:
    """Rotate now. Exit 0 only when every new secret is current and verified."""
    if (api_key is None) == (not all_keys):
        raise ConfigError("give one API_KEY or --all")
    if api_key is not None:
        api_key = api_key_argument(api_key)
    if emergency and not reason:
        raise ConfigError("--emergency needs --reason (it goes in the audit log and the alert)")
    if break_lease and (not emergency or api_key is None):
        raise ConfigError("--break-lease needs --emergency and one API_KEY")
    if dry_run:
        from rotator.commands.inspect import show_plans

        show_plans(api_key, emergency=emergency, as_json=as_json)
        return
    from rotator import startup, tls

    tls.prepare()  # the CA bundle loads on another core while the rotation's modules import
    with startup.loading():  # most of what a rotation imports, the database driver included
        from rotator.devtools import pausepoints
        from rotator.services import build

        services = build(get_config(), boundary=pausepoints.from_environment())
    try:
        # before any run is recorded: a sealed Vault is exit 3, a missing token exit 2, no run
        services.vault.health()
        if break_lease and api_key is not None and reason is not None:
            from rotator.commands.lease import break_lease as do_break

            do_break(services, api_key, actor=actor or default_actor(), reason=reason)
        keys, skipped = _keys(services, api_key)
        if wait is None and emergency:
            wait = EMERGENCY_WAIT
        outcomes = [
            _rotate_one(services, key, reason, actor, emergency, wait, as_json) for key in keys
        ]
    finally:
        services.close()
    if as_json:
        print_json([_outcome_json(o) for o in outcomes] if all_keys else _outcome_json(outcomes[0]))
    if skipped or not all(o.ok for o in outcomes):
        raise typer.Exit(1)


def _keys(services: Services, api_key: str | None) -> tuple[list[str], bool]:
    """The keys to rotate, and whether any listed key was quarantined (exit 1 then)."""
    if api_key is not None:
        return [api_key], False
    from rotator.inspection import account_listing

    keys, refused = account_listing(services)
    for label in refused:  # the others still rotate; the exit status says something was off
        typer.echo(f"skipped   {label}: quarantined (Vonage listed an invalid API key)", err=True)
    return keys, bool(refused)


def _rotate_one(
    services: Services,
    api_key: str,
    reason: str | None,
    actor: str | None,
    emergency: bool,
    wait: float | None,
    quiet: bool,
) -> Outcome:
    def waiting(holder: LeaseInfo) -> None:
        from rotator.escape import terminal

        typer.echo(
            terminal(
                f"{api_key} is being rotated by {holder.owner}; waiting up to {wait:g}s "
                "for it to reach a safe point"
            ),
            err=True,
        )

    def graced(until: datetime) -> None:
        typer.echo(
            f"{api_key}: its previous secret is in its grace period until {iso(until)}; "
            "waiting for it to end",
            err=True,
        )

    from rotator.audit import Trigger

    reason = _mind_pause(services, api_key, reason, emergency)
    outcome = services.rotator.rotate(
        api_key,
        trigger=Trigger.MANUAL,
        actor=actor or default_actor(),
        reason=reason,
        emergency=emergency,
        lock_wait=timedelta(seconds=wait) if wait is not None else None,
        on_wait=waiting,
        grace_wait=timedelta(seconds=wait) if wait is not None else timedelta(0),
        on_grace=graced,
    )
    _alert(services, outcome)
    if not quiet:
        for old in outcome.resumed:
            typer.echo(f"resumed   {run_line(old)}")
        typer.echo(f"{'rotated' if outcome.ok else 'FAILED':9} {run_line(outcome.run)}")
    return outcome


def _mind_pause(
    services: Services, api_key: str, reason: str | None, emergency: bool
) -> str | None:
    """A paused key rotates only in an emergency, which says so (stderr and the audit log)."""
    from rotator.clock import utcnow
    from rotator.errors import KeyHeldError
    from rotator.holds import Holds

    pause = Holds(services.engine, services.audit).pause_for(api_key, utcnow())
    if pause is None:
        return reason
    if not emergency:
        raise KeyHeldError(f"{api_key} is held: {pause.describe()}")
    typer.echo(f"note: {api_key} is paused ({pause.describe()}); emergency runs anyway", err=True)
    return f"{reason} (the key was paused: {pause.describe()})"


def _alert(services: Services, outcome: Outcome) -> None:
    """Emergencies and failures page someone (deduplicated by the notifier)."""
    run = outcome.run
    kind = "emergency" if run.emergency else None
    if not outcome.ok:
        kind = str(run.status)
    if kind is None:
        return
    from rotator.notify import Notifier

    notifier = Notifier(
        services.config, audit=services.audit, vault=services.vault, vonage=services.vonage
    )
    message = f"{run.api_key}: {kind} rotation by {run.actor} ({run.reason or 'no reason'})"
    if run.error:
        message += f": {run.error}"
    try:
        notifier.alert(kind, run.api_key, message, run_id=run.id)
    finally:
        notifier.close()


def _outcome_json(outcome: Outcome) -> dict[str, object]:
    return {**outcome.run.to_json(), "resumed": [r.to_json() for r in outcome.resumed]}
