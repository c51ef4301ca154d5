"""``rotator plan``, ``rotator status`` and ``rotator check``: read-only views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rotator.commands.context import api_key_argument, console, get_config, options, print_json
from rotator.durations import format_duration
from rotator.errors import RotatorError
from rotator.redact import scrub

EXIT_NOT_INSPECTED = 1  # plan / rotate --dry-run: some key could not be inspected

if TYPE_CHECKING:
    from rotator.inspection import KeyView
    from rotator.services import Services


def _views(services: Services, api_key: str | None, *, emergency: bool = False) -> list[KeyView]:
    from rotator.inspection import account_listing, admin_credentials, observe, quarantined_view

    admin = admin_credentials(services)
    keys, refused = ([api_key], []) if api_key else account_listing(services, admin)
    views = [observe(services, key, admin=admin, emergency=emergency) for key in keys]
    return views + [quarantined_view(label) for label in refused]


def _age(delta: timedelta | None) -> str:
    return format_duration(delta) if delta is not None else "-"


def _next_due(services: Services, view: KeyView) -> datetime | None:
    from rotator.scheduling import next_due

    due = next_due(
        services.config.schedule_for(view.api_key),
        api_key=view.api_key,
        last_success=view.last_success,
        first_seen=datetime.now(UTC),
    )
    return max(due, view.grace_until) if view.grace_until else due  # postponed past the grace


def _holds(services: Services, keys: list[str]) -> dict[str, str | None]:
    """What holds each key: a pause, or the stuck rule with what to do about it."""
    from rotator.holds import ALL, Holds

    holds = Holds(services.engine, services.audit)
    pauses = holds.active_pauses(datetime.now(UTC))
    max_attempts = services.config.rotation.max_attempts
    out: dict[str, str | None] = {}
    for key in keys:
        pause = pauses.get(key) or pauses.get(ALL)
        if pause is not None:
            out[key] = pause.describe()
        elif holds.failures(key, max_attempts) >= max_attempts:
            out[key] = (
                f"stuck: {max_attempts} failed runs in a row; fix the cause, then "
                f"`rotator resume {key}`"
            )
        else:
            out[key] = None
    return out


def show_plans(api_key: str | None, *, emergency: bool, as_json: bool) -> None:
    """Print the plans; exit 1 (after printing all) when any key could not be inspected."""
    from rotator.services import build

    services = build(get_config())
    try:
        views = _views(services, api_key, emergency=emergency)
        holds = _holds(services, [v.api_key for v in views])
    finally:
        services.close()
    _print_plans(views, holds, as_json=as_json)
    if any(view.error for view in views):
        raise typer.Exit(EXIT_NOT_INSPECTED)


def _print_plans(views: list[KeyView], holds: dict[str, str | None], *, as_json: bool) -> None:
    if as_json:
        print_json([{**v.to_json(), "hold": holds[v.api_key]} for v in views])
        return
    from rotator.escape import markup as m
    from rotator.escape import terminal

    out = console()
    now = datetime.now(UTC)
    for view in views:
        out.print(f"[bold]{m(view.api_key)}[/bold]{' (primary)' if view.is_primary else ''}")
        if holds[view.api_key]:
            out.print(f"  [yellow]held: {m(holds[view.api_key])}[/yellow]")
        if view.error:
            out.print(f"  [red]cannot inspect: {m(scrub(view.error))}[/red]")
            continue
        _print_facts(out, view, now)
        assert view.plan is not None
        if view.plan.blocked:
            out.print(f"  [red]would stop: {m(scrub(view.plan.blocked))}[/red]")
            out.print("  resolve with: rotator adopt API_KEY --secret-id ID")
        else:
            out.print("  would:")
            for number, action in enumerate(view.plan.actions, 1):
                out.print(terminal(f"    {number}. {scrub(action)}"), markup=False)


def _print_facts(out: Any, view: KeyView, now: datetime) -> None:
    """A key's secrets, Vault record, grace period and last run, as ``plan`` shows them."""
    from rotator.escape import markup as m
    from rotator.escape import terminal

    for secret in view.secrets:
        mark = "current" if view.current is secret else ""
        age = _age(now - secret.created_at)
        out.print(terminal(f"  secret {secret.id}  age {age:>8}  {mark}"), markup=False)
    vault = "no record"
    if view.record_present:
        vault = f"current secret id {view.record_secret_id or '(none recorded)'}"
    if view.pending:
        vault += f"; pending {view.pending_id or '(not yet on Vonage)'}"
    if view.previous_id:
        vault += f"; previous {view.previous_id}"
    if view.adopted_id:
        vault += f"; adopted {view.adopted_id}"
    out.print(terminal(f"  vault: {vault}"), markup=False)
    if view.grace_until:
        out.print(f"  in grace until {view.grace_until:%Y-%m-%d %H:%M:%S}Z: rotation postponed")
    if view.last_run is not None:
        run = view.last_run
        out.print(f"  last run: {run.status} {run.started_at:%Y-%m-%d %H:%M}Z ({m(run.id[:8])})")


def plan(
    api_key: Annotated[str | None, typer.Argument(help="One key (default: every key).")] = None,
    emergency: Annotated[bool, typer.Option(help="Plan an emergency rotation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Show what rotator sees for each key and exactly what it would do. Changes nothing.
    Exit 1 when a key could not be inspected."""
    key = api_key_argument(api_key) if api_key is not None else None
    show_plans(key, emergency=emergency, as_json=as_json)


def status(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Every key: secret count, current secret and age, last run, next due, lease holder."""
    from rotator.services import build

    services = build(get_config())
    try:
        views = _views(services, None)
        dues = {v.api_key: _next_due(services, v) for v in views}
        holds = _holds(services, [v.api_key for v in views])
    finally:
        services.close()
    if as_json:
        print_json(
            [
                {
                    **v.to_json(),
                    "next_due": (d.isoformat() if (d := dues[v.api_key]) else None),
                    "hold": holds[v.api_key],
                }
                for v in views
            ]
        )
        return
    console().print(_status_table(views, dues, holds))


def _status_table(
    views: list[KeyView], dues: dict[str, datetime | None], holds: dict[str, str | None]
) -> Any:
    """``rotator status``'s table: one row per key, failures in red, holds in yellow."""
    from rich.table import Table

    from rotator.escape import markup as m

    table = Table(title="rotator status")
    columns = ("key", "secrets", "current secret", "age", "last run", "next due", "in grace until",
               "lease", "hold")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for view in views:
        current = view.current
        run = view.last_run
        failed = run is not None and str(run.status) in {"failed", "rolled_back"}
        last = f"{run.status} {run.started_at:%Y-%m-%d %H:%M}Z" if run else "never"
        due = dues[view.api_key]
        unknown = "[red]unknown[/red]" if not view.error else m(scrub(view.error))
        table.add_row(
            m(view.api_key) + (" (primary)" if view.is_primary else ""),
            str(len(view.secrets)) if not view.error else "?",
            m(current.id) if current else unknown,
            _age(view.age()),
            f"[red]{last}[/red]" if failed else last,
            f"{due:%Y-%m-%d %H:%M}Z" if due else "-",
            f"{view.grace_until:%Y-%m-%d %H:%M:%S}Z" if view.grace_until else "",
            m(view.lease.owner) if view.lease and view.lease.active else "",
            f"[yellow]{m(holds[view.api_key])}[/yellow]" if holds[view.api_key] else "",
        )
    return table


def check() -> None:
    """Validate the config and connectivity; one actionable line per problem."""
    try:
        config = get_config()
    except RotatorError as exc:
        from rotator.escape import terminal

        typer.echo(f"FAIL config: {terminal(scrub(str(exc)))}")
        raise typer.Exit(2) from None
    from rotator.checks import run_checks
    from rotator.escape import terminal

    results = run_checks(config, config_path=options.config_path)
    for result in results:
        typer.echo(terminal(f"{result.label} {result.area}: {result.message}"))
    if not all(r.ok for r in results):
        raise typer.Exit(1)
