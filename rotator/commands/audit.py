"""``rotator audit``: list runs (filters; table, JSON lines or CSV), ``show`` one run step by
step, ``verify`` the hash chain. Read-only."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from rotator.commands.context import api_key_argument, console, get_config
from rotator.durations import parse_duration
from rotator.errors import ConfigError

if TYPE_CHECKING:
    from rotator.audit import AuditLog, Head, Run, RunStatus

audit_app = typer.Typer(help="Read and verify the audit log.", invoke_without_command=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


CSV_FIELDS = ["run_id", "api_key", "trigger", "status", "emergency", "actor", "reason",
              "old_secret_id", "new_secret_id", "started_at", "finished_at", "error"]  # fmt: skip


def _moment(text: str | None, option: str) -> datetime | None:
    """An ISO date/time, or a duration meaning that long ago (``7d``)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} is neither an ISO date/time nor a duration like 7d"
        ) from None


def _statuses(names: list[str] | None) -> list[RunStatus] | None:
    """``--outcome`` values as statuses (checked here, so the option costs no import)."""
    from rotator.audit import RunStatus

    if not names:
        return None
    known = [str(s) for s in RunStatus]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--outcome: {unknown[0]!r} is not one of {', '.join(known)}")
    return [RunStatus(n) for n in names]


def _audit_log() -> AuditLog:
    from rotator.audit import AuditLog
    from rotator.services import open_database

    return AuditLog(open_database(get_config(), migrate=False))


@audit_app.callback()
def audit(
    ctx: typer.Context,
    api_key: Annotated[str | None, typer.Option(help="Only this key.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run (id or prefix).")] = None,
    since: Annotated[str | None, typer.Option(help="From (ISO time, or e.g. 7d ago).")] = None,
    until: Annotated[str | None, typer.Option(help="Until (ISO time, or e.g. 1d ago).")] = None,
    outcome: Annotated[
        list[str] | None,
        typer.Option(help="Only runs with this status (repeatable): succeeded, failed, ..."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 100,
    output: Annotated[Format, typer.Option("--format", help="table, json (lines) or csv.")] = (
        Format.table
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """List rotation runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    statuses = _statuses(outcome)
    key = api_key_argument(api_key) if api_key is not None else None
    log = _audit_log()
    if run is not None:
        found = log.find_run(run)
        runs = [found] if found else []
    else:
        runs = log.runs(
            api_key=key,
            statuses=statuses,
            since=_moment(since, "--since"),
            until=_moment(until, "--until"),
            limit=limit,
        )
    _print_runs(runs, Format.json if as_json else output)


def csv_row(run: Run) -> dict[str, object]:
    """A run as CSV cells: secret values scrubbed, formulas neutralised, controls shown."""
    from rotator.escape import csv_cell
    from rotator.redact import scrub

    return {
        name: csv_cell(scrub(value) if isinstance(value, str) else value)
        for name, value in run.to_json().items()
    }


def _print_runs(runs: list[Run], output: Format) -> None:
    from rotator.escape import markup as m
    from rotator.redact import scrub

    if output is Format.json:
        for r in runs:
            typer.echo(scrub(json.dumps(r.to_json())))
    elif output is Format.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in runs:
            writer.writerow(csv_row(r))
    else:
        from rich.table import Table

        from rotator.audit import RunStatus

        table = Table()
        for column in ("run", "key", "trigger", "status", "actor", "started", "old → new", "error"):
            table.add_column(column)
        for r in runs:
            bad = r.status in {RunStatus.FAILED, RunStatus.ROLLED_BACK}
            table.add_row(
                m(r.id[:8]),
                m(r.api_key),
                m(r.trigger),
                f"[red]{r.status}[/red]" if bad else str(r.status),
                m(r.actor),
                f"{r.started_at:%Y-%m-%d %H:%M:%S}Z",
                m(f"{r.old_secret_id or '-'} → {r.new_secret_id or '-'}"),
                m(scrub(r.error or "")[:80]),
            )
        console().print(table)


@audit_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Tell one run step by step."""
    log = _audit_log()
    run = log.find_run(run_id)
    if run is None:
        raise ConfigError(f"no run (or more than one) matches {run_id!r}")
    events = log.events(run_id=run.id)
    from rotator.escape import markup as m
    from rotator.escape import terminal
    from rotator.redact import scrub

    if as_json:
        events_json = [e.to_json() for e in events]
        typer.echo(scrub(json.dumps({**run.to_json(), "events": events_json}, indent=2)))
        return
    out = console()
    out.print(
        f"[bold]run {m(run.id)}[/bold]  {m(run.api_key)}  {m(run.trigger)}  status {run.status}"
    )
    out.print(f"actor {m(run.actor)}; reason {m(run.reason or '-')}")
    out.print(m(f"secret {run.old_secret_id or '-'} → {run.new_secret_id or '-'}"))
    for event in events:
        took = (event.finished_at - event.started_at).total_seconds()
        line = (
            f"  #{event.seq:<5} {event.finished_at:%H:%M:%S}  {event.step:<10} {event.outcome:<11}"
        )
        line += f" {took:6.2f}s"
        if event.secret_id:
            line += f"  secret {event.secret_id}"
        if event.request_id:
            line += f"  vonage request {event.request_id}"
        if event.vault_version is not None:
            line += f"  vault v{event.vault_version}"
        out.print(terminal(line), markup=False)
        if event.error:
            out.print(terminal(f"          error: {scrub(event.error)}"), markup=False)
    if run.error:
        out.print(f"[red]error: {m(scrub(run.error))}[/red]")


@audit_app.command("verify")
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(help="A head printed by an earlier verify: it must still be in the log."),
    ] = None,
    anchor: Annotated[
        bool, typer.Option(help="Compare with the head rotator anchored in Vault.")
    ] = True,
) -> None:
    """Walk every chain, the folds, the heads and the runs; with the Vault anchor (and
    ``--expect-head``) a deleted tail or a recomputed chain is caught too. Exit 1 if broken."""
    anchored = _anchored_head() if anchor else None
    report = _audit_log().verify_chain(anchor=anchored, expect_head=expect_head)
    if report.ok:
        where = f", anchored at event {anchored.chain_seq}" if anchored else ", no anchor"
        typer.echo(f"audit chain verified: {report.checked} events, head {report.head}{where}")
        return
    from rotator.escape import terminal

    at = f" at event {report.first_bad_seq}" if report.first_bad_seq is not None else ""
    typer.echo(
        terminal(
            f"AUDIT CHAIN BROKEN{at}: {report.problem} ({report.checked} events verified before it)"
        )
    )
    raise typer.Exit(1)


def _anchored_head() -> Head | None:
    from rotator.anchor import VaultAnchor
    from rotator.vault import VaultStore

    return VaultAnchor(VaultStore(get_config().vault)).read()
