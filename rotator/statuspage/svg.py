"""The status page's pictures as inline SVG (no script, no external resource: the strict CSP
holds): a key's run timeline, the fleet's secret ages against their interval, rotations per hour.
Pure functions of the snapshot; every label goes through ``esc``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

from rotator.audit import RunStatus
from rotator.hourly import WEEK_HOURS
from rotator.snapshot import HourCount, KeyStatus, RunMark
from rotator.statuspage.text import esc, shown

OUTCOME_COLOUR: Final = {
    RunStatus.SUCCEEDED: "#2e7d32",
    RunStatus.AWAITING_REVOKE: "#6a4c93",
    RunStatus.RUNNING: "#1565c0",
    RunStatus.ROLLED_BACK: "#d9822b",
    RunStatus.FAILED: "#c62828",
}
AGE_BINS: Final = 12  # bins of 1/8 of the interval from 0 to 1.5 intervals, then "older"
_FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def _svg(width: int, height: int, label: str, body: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
        f"<title>{esc(label)}</title>{''.join(body)}</svg>"
    )


def timeline(runs: Sequence[RunMark], now: datetime, *, width: int = 640) -> str:
    """One mark per run on a time axis ending now, coloured by outcome."""
    height, left, right = 56, 10, width - 10
    start = min((r.started_at for r in runs), default=now - timedelta(days=1))
    span = max((now - start).total_seconds(), 60.0) * 1.05
    origin = now - timedelta(seconds=span)

    def x(moment: datetime) -> float:
        return left + (right - left) * (moment - origin).total_seconds() / span

    parts = [f'<line x1="{left}" y1="24" x2="{right}" y2="24" stroke="#999"/>']
    for run in runs:
        colour = OUTCOME_COLOUR.get(run.status, "#555")
        tip = f"{shown(run.started_at)} {run.status} ({run.trigger}) {run.run_id[:8]}"
        parts.append(
            f'<circle class="run {esc(run.status)}" cx="{x(run.started_at):.1f}" cy="24" r="7" '
            f'fill="{colour}"><title>{esc(tip)}</title></circle>'
        )
    parts.append(f'<text x="{left}" y="50" {_FONT}>{esc(shown(origin))}</text>')
    parts.append(f'<text x="{right}" y="50" text-anchor="end" {_FONT}>now</text>')
    return _svg(width, height, f"run history: {len(runs)} runs", parts)


def age_bins(keys: Iterable[KeyStatus]) -> tuple[list[int], int]:
    """Keys per bin of secret age / interval, and how many have no age or interval."""
    bins, unknown = [0] * (AGE_BINS + 1), 0
    for key in keys:
        if key.secret_age is None or not key.interval:
            unknown += 1
            continue
        ratio = key.secret_age / key.interval
        bins[min(int(ratio * 8), AGE_BINS)] += 1
    return bins, unknown


def age_histogram(keys: Iterable[KeyStatus], *, width: int = 560) -> str:
    """Secret ages against the rotation interval: bars right of the line are overdue."""
    bins, unknown = age_bins(keys)
    height, base, top = 170, 140, 16
    step = (width - 20) / len(bins)
    peak = max(max(bins), 1)
    parts = []
    for i, count in enumerate(bins):
        h = (base - top) * count / peak
        colour = "#2e7d32" if i < 8 else ("#d9822b" if i < AGE_BINS else "#c62828")
        label = f">{AGE_BINS / 8:g}" if i == AGE_BINS else f"{i / 8:g}-{(i + 1) / 8:g}"
        parts.append(
            f'<rect class="bin" x="{10 + i * step:.1f}" y="{base - h:.1f}" width="{step - 2:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{count} keys aged {label} x interval'
            "</title></rect>"
        )
    line = 10 + 8 * step
    parts.append(
        f'<line x1="{line:.1f}" y1="{top - 6}" x2="{line:.1f}" y2="{base}" stroke="#222" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append(f'<text x="{line + 3:.1f}" y="{top}" {_FONT}>interval</text>')
    parts.append(f'<text x="10" y="{base + 14}" {_FONT}>0</text>')
    parts.append(f'<text x="{line:.1f}" y="{base + 14}" text-anchor="middle" {_FONT}>1x</text>')
    parts.append(
        f'<text x="10" y="{base + 28}" {_FONT}>peak {peak} keys per bar; '
        f"{unknown} without a known age</text>"
    )
    return _svg(width, height, "secret age against the rotation interval", parts)


def rotations_per_hour(hours: Sequence[HourCount], *, width: int = 700) -> str:
    """Rotations per hour over the last 7 days (oldest first); failed part of each bar in red."""
    pad = [0] * (WEEK_HOURS - len(hours[-WEEK_HOURS:]))
    total = pad + [h.runs for h in hours[-WEEK_HOURS:]]
    failed = pad + [h.failed for h in hours[-WEEK_HOURS:]]
    height, base, top = 170, 140, 10
    step = (width - 20) / WEEK_HOURS
    peak = max(max(total), 1)
    parts = []
    for i, (count, bad) in enumerate(zip(total, failed, strict=True)):
        if not count:
            continue
        h, hf = (base - top) * count / peak, (base - top) * bad / peak
        x = 10 + i * step
        tip = f"{WEEK_HOURS - i}h ago: {count} runs, {bad} failed"
        parts.append(
            f'<rect class="hour" x="{x:.1f}" y="{base - h:.1f}" width="{max(step - 0.6, 1):.1f}" '
            f'height="{h:.1f}" fill="#1565c0"><title>{esc(tip)}</title></rect>'
        )
        if bad:
            parts.append(
                f'<rect class="failed" x="{x:.1f}" y="{base - hf:.1f}" '
                f'width="{max(step - 0.6, 1):.1f}" height="{max(hf, 2):.1f}" fill="#c62828"/>'
            )
    for day in range(8):
        x = 10 + day * 24 * step
        parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="#999"/>')
        label = "now" if day == 7 else f"-{7 - day}d"
        parts.append(
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle" {_FONT}>{label}</text>'
        )
    parts.append(
        f'<text x="10" y="{base + 30}" {_FONT}>peak {peak} runs/hour; '
        f"{sum(failed)} of {sum(total)} failed</text>"
    )
    return _svg(width, height, "rotations per hour, last 7 days", parts)


__all__ = ["age_bins", "age_histogram", "rotations_per_hour", "timeline"]
