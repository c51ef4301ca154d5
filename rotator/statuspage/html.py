"""The status page as HTML: the overview (summary, pictures, keys needing attention, the
filtered and paginated list) and one page per key. Every value goes through ``esc``; no script."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final
from urllib.parse import quote

from rotator.hourly import hours_of
from rotator.snapshot import HourCount, KeyStatus, StatusSnapshot, StepMark
from rotator.statuspage import svg
from rotator.statuspage.filters import Page, Query
from rotator.statuspage.states import STATES, State, counts
from rotator.statuspage.text import age, countdown, esc, relative, shown

CSP: Final = "default-src 'none'; style-src 'unsafe-inline'"  # also in the page: file copies
ATTENTION_SHOWN: Final = 20  # the rest are one click away (?state=)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1300px}
table{border-collapse:collapse}th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}tr.fail td{background:#fde8e8;color:#a00}td.fail{color:#a00;font-weight:bold}
td.ok{color:#070}.muted{color:#777}code{font-size:.95em}a{color:#1565c0}
.cards{display:flex;gap:.8em;flex-wrap:wrap;margin:1em 0}
.card{border:1px solid #ddd;border-left:6px solid var(--c);padding:.5em 1em;min-width:8em;
text-decoration:none;color:#222}.card b{font-size:1.6em;display:block}.card.zero{opacity:.5}
.pics{display:flex;gap:2em;flex-wrap:wrap}.pics figure{margin:0}figcaption{font-weight:bold}
.state{display:inline-block;padding:0 .5em;border-radius:.8em;color:#fff;background:var(--c)}
form{margin:1em 0}nav a,nav b{margin-right:.6em}
"""


def _head(title: str, query: Query | None) -> str:
    refresh = ""
    if query is not None and query.refresh is not None:
        refresh = f'<meta http-equiv="refresh" content="{query.refresh}">'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"{refresh}<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
    )


def _byline(status: StatusSnapshot) -> str:
    return (
        f"<p class=muted>version {esc(status.version)}, {esc(status.phase)}, "
        f"as of {esc(shown(status.generated_at) or '')}; this process: "
        f"<code>{esc(status.owner)}</code></p>"
    )


def key_link(key: KeyStatus) -> str:
    return (
        f'<a href="/status/keys/{quote(key.api_key, safe="")}"><code>{esc(key.api_key)}</code></a>'
    )


def _badge(state: State) -> str:
    return f'<span class="state {state.name}" style="--c:{state.colour}">{esc(state.label)}</span>'


def _summary(tally: dict[str, int], total: int, query: Query) -> str:
    cards = []
    for state in STATES:
        n = tally[state.name]
        href = esc(query.link(state=state.name, page=1))
        zero = " zero" if n == 0 else ""
        cards.append(
            f'<a class="card {state.name}{zero}" style="--c:{state.colour}" href="{href}">'
            f"<b>{n}</b>{esc(state.label)}</a>"
        )
    failing = tally.get("failing", 0)
    line = f"{failing} of {total} keys failing" if failing else f"All {total} keys healthy."
    if not failing and tally.get("healthy", 0) != total:
        line = f"No key failing; {total} keys managed."
    css = "fail" if failing else "ok"
    return f'<p class="{css}"><b>{esc(line)}</b></p><div class=cards>{"".join(cards)}</div>'


def _row(key: KeyStatus, state: State, now: datetime) -> str:
    run = key.last_run
    result = str(run.status) if run is not None else "never run"
    cls = "fail" if key.failing else ("ok" if result in ("succeeded", "awaiting_revoke") else "")
    holder = key.lease.owner if key.lease is not None and key.lease.active else "-"
    name = f"<br><span class=muted>{esc(key.name)}</span>" if key.name else ""
    grace = f" ({countdown(key.grace_until, now)})" if key.grace_until else ""
    return (
        f'<tr class="{"fail" if key.failing else ""}">'
        f"<td>{key_link(key)}{name}</td>"
        f"<td>{_badge(state)}{esc(grace)}</td>"
        f"<td>{'primary' if key.primary else 'subaccount'}</td>"
        f"<td>{esc(age(key.secret_age))}</td>"
        f'<td class="{cls}">{esc(result)}</td>'
        f"<td>{esc(relative(key.next_due, now))}</td>"
        f"<td>{esc(holder)}</td>"
        f"<td>{esc((run.error if run is not None else None) or key.error or '')}</td>"
        "</tr>"
    )


def _table(rows: Sequence[tuple[KeyStatus, State]], now: datetime, css: str = "") -> str:
    return (
        f'<table class="{css}"><thead><tr><th>API key</th><th>state</th><th>role</th>'
        "<th>secret age</th><th>last result</th><th>next due</th><th>lease holder</th>"
        "<th>last error</th></tr></thead><tbody>"
        + "".join(_row(k, s, now) for k, s in rows)
        + "</tbody></table>"
    )


def _filter_form(query: Query) -> str:
    options = "".join(
        f'<option value="{s.name}"{" selected" if s.name == query.state else ""}>'
        f"{esc(s.label)}</option>"
        for s in STATES
    )
    refresh = f'<input type=hidden name=refresh value="{query.refresh}">' if query.refresh else ""
    return (
        '<form method=get action="/status">'
        f'<input name=q value="{esc(query.q)}" placeholder="API key or name" maxlength=64> '
        f'<select name=state><option value="">any state</option>{options}</select> '
        f"{refresh}<button>filter</button></form>"
    )


def _pager(page: Page, query: Query) -> str:
    if page.pages <= 1:
        return ""
    wanted = {1, page.pages, *range(max(1, page.page - 3), min(page.pages, page.page + 3) + 1)}
    parts = []
    for n in sorted(wanted):
        if n == page.page:
            parts.append(f"<b>{n}</b>")
        else:
            parts.append(f'<a href="{esc(query.link(page=n))}">{n}</a>')
    return f"<nav class=pager>page {' '.join(parts)} of {page.pages}</nav>"


def overview(
    status: StatusSnapshot, rows: Sequence[tuple[KeyStatus, State]], page: Page, query: Query
) -> str:
    """Summary first, then the pictures, the keys needing attention, the filtered list."""
    now = status.generated_at
    tally = counts(s for _k, s in rows)
    attention = [(k, s) for k, s in rows if s.attention]
    keys = [k for k, _s in rows]
    more = ""
    if len(attention) > ATTENTION_SHOWN:
        more = f"<p>and {len(attention) - ATTENTION_SHOWN} more: use the state filter below.</p>"
    needs = (
        f"<h2>Needs attention ({len(attention)})</h2>"
        + _table(attention[:ATTENTION_SHOWN], now, "attention")
        + more
        if attention
        else "<h2>Needs attention</h2><p class=ok>Nothing.</p>"
    )
    return (
        _head("rotator status", query)
        + f"<h1>rotator</h1>{_byline(status)}{_summary(tally, len(rows), query)}"
        + "<div class=pics>"
        + "<figure><figcaption>Secret age / rotation interval</figcaption>"
        + f"{svg.age_histogram(keys)}</figure>"
        + "<figure><figcaption>Rotations per hour, last 7 days (failures in red)</figcaption>"
        + f"{svg.rotations_per_hour(_hours(status))}</figure></div>"
        + needs
        + _quarantined(status.quarantined)
        + f"<h2>All keys ({page.matching} of {page.total} shown by the filter)</h2>"
        + _filter_form(query)
        + _pager(page, query)
        + _table(page.rows, now, "keys")
        + _pager(page, query)
        + "</body></html>"
    )


def _quarantined(found: Sequence[tuple[str, str]]) -> str:
    """Keys rotator refuses to handle (not managed, so not in the list): named, with why."""
    if not found:
        return ""
    items = "".join(
        f"<tr><td><code>{esc(k)}</code></td><td>{esc(why)}</td></tr>" for k, why in found
    )
    return (
        f"<h2>Quarantined ({len(found)})</h2>"
        '<table class="quarantined"><thead><tr><th>key</th><th>why</th></tr></thead>'
        f"<tbody>{items}</tbody></table>"
    )


def _hours(status: StatusSnapshot) -> tuple[HourCount, ...]:
    """The snapshot's hourly counts; from the keys' rings when it carries none (slower)."""
    if status.hours is not None:
        return status.hours
    return hours_of([m for k in status.keys for m in k.recent], status.generated_at)


def _steps(steps: Sequence[StepMark]) -> str:
    if not steps:
        return "<p class=muted>No steps recorded.</p>"
    rows = "".join(
        f'<tr class="{"fail" if s.outcome in ("failed", "error") else ""}">'
        f"<td>{esc(s.step)}</td><td>{esc(s.outcome)}</td><td>{esc(shown(s.started_at))}</td>"
        f"<td>{esc(s.request_id or '-')}</td><td>{esc(s.error or '')}</td></tr>"
        for s in steps
    )
    return (
        "<table class=steps><thead><tr><th>step</th><th>outcome</th><th>at</th>"
        f"<th>request id</th><th>error</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _facts(key: KeyStatus, now: datetime) -> list[tuple[str, str]]:
    lease = key.lease
    holder = "-"
    if lease is not None:
        active = "active" if lease.active else "expired"
        holder = f"{lease.owner} ({active}, until {shown(lease.expires_at)})"
    ratio = ""
    if key.secret_age is not None and key.interval:
        ratio = f" = {key.secret_age / key.interval:.0%} of its interval ({age(key.interval)})"
    extra = [(name, str(value)) for name, value in _optional_states(key)]
    return [
        ("name", key.name or "-"),
        ("role", "primary" if key.primary else "subaccount"),
        ("secret age", f"{age(key.secret_age)}{ratio}"),
        ("last success", relative(key.last_success, now)),
        ("next due", relative(key.next_due, now)),
        ("grace", countdown(key.grace_until, now) if key.grace_until else "not in grace"),
        ("lease holder", holder),
        ("rotating here", "yes" if key.rotating_here else "no"),
        ("check error", key.error or "-"),
        *extra,
    ]


def _optional_states(key: KeyStatus) -> list[tuple[str, object]]:
    """Pause/stuck/drift/quarantine facts when the snapshot carries them."""
    names = ("paused", "stuck", "drifted", "quarantined")
    return [(n, getattr(key, n)) for n in names if getattr(key, n, None)]


def key_page(
    status: StatusSnapshot, key: KeyStatus, state: State, steps: Sequence[StepMark], query: Query
) -> str:
    """One key: its state, run timeline, secret age against its schedule, last run's steps."""
    now = status.generated_at
    facts = "".join(f"<tr><th>{esc(n)}</th><td>{esc(v)}</td></tr>" for n, v in _facts(key, now))
    run = key.last_run
    last = (
        f"<h2>Last run <code>{esc(run.id)}</code>: {esc(run.status)} ({esc(run.trigger)}, "
        f"started {esc(relative(run.started_at, now))})</h2>" + _steps(steps)
        if run is not None
        else "<h2>Last run</h2><p class=muted>Never run.</p>"
    )
    return (
        _head(f"rotator: {key.api_key}", query)
        + f'<p><a href="/status">&larr; all keys</a></p><h1><code>{esc(key.api_key)}</code> '
        + f"{_badge(state)}</h1>{_byline(status)}"
        + f"<table class=facts>{facts}</table>"
        + f"<h2>Run history ({len(key.recent)} most recent)</h2>"
        + svg.timeline(key.recent, now)
        + last
        + "</body></html>"
    )


__all__ = ["key_page", "overview"]
