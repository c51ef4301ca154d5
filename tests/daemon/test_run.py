"""`rotator run` as deployed: one real subprocess against the simulator, OpenBao and PostgreSQL,
with a 1-second schedule, watched over several rotations and then stopped with SIGTERM.

The session runs once (module fixture); each test asserts one thing about it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hvac
import pytest

from rotator.audit import AuditLog, Run, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.polling import wait_until
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World
from tests.daemon.conftest import DaemonProcess, open_audit, own_world, start_daemon, wait_for
from tests.invariants import violations

pytestmark = pytest.mark.postgres
KEYS = [PRIMARY, *SUBACCOUNTS]


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of the Prometheus text (labels in the order given), or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.M)
    return float(found.group(1)) if found else None


@dataclass
class Session:
    world: World
    audit: AuditLog
    daemon: DaemonProcess
    metrics: list[str] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    key_pages: list[str] = field(default_factory=list)
    healthz: int = 0
    readyz: int = 0
    current_secrets: list[str] = field(default_factory=list, repr=False)  # never in a failure
    exit_code: int | None = None

    def runs(self, key: str, status: str | None = None) -> list[Run]:
        return [r for r in self.audit.runs(api_key=key) if status is None or r.status == status]

    def snapshot(self) -> None:
        self.metrics.append(self.daemon.get("/metrics").text)
        self.statuses.append(self.daemon.status())
        self.pages.append(self.daemon.get("/status", Accept="text/html").text)
        self.key_pages.append(self.daemon.get(f"/status/keys/{KEYS[1]}").text)


def metrics_caught_up(s: Session) -> bool:
    """/metrics counts at least as many successes per key as the audit log holds."""
    succeeded = {k: len(s.runs(k, RunStatus.SUCCEEDED)) for k in KEYS}
    text = s.daemon.get("/metrics").text
    return all(
        (metric(text, "rotator_rotations_total", api_key=k, outcome="succeeded") or 0) >= n
        for k, n in succeeded.items()
    )


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    with own_world(
        openbao,
        vault_admin,
        tmp_path_factory.mktemp("run"),
        rotation={"schedule": {"interval": "1s", "jitter": "0s"}},
    ) as world:
        world.seed_primary()
        audit = open_audit(world)
        daemon = start_daemon(world)
        s = Session(world, audit, daemon)
        try:
            s.healthz = daemon.get("/healthz").status_code
            wait_for(
                lambda: all(s.runs(k, RunStatus.SUCCEEDED) for k in KEYS), what="a rotation each"
            )
            s.readyz = wait_for(lambda: daemon.get("/readyz").status_code == 200 and 200)
            s.snapshot()
            # At least one more rotation of every key after the first snapshot (with a 1 s
            # interval a key may already have two by then).
            seen = {k: len(s.runs(k, RunStatus.SUCCEEDED)) for k in KEYS}
            wait_for(
                lambda: all(len(s.runs(k, RunStatus.SUCCEEDED)) > max(seen[k], 1) for k in KEYS),
                what="another rotation each",
            )
            # The audit records a success before the daemon's metrics count it: give /metrics
            # a moment to catch up (no failure here; the metrics tests then judge what it shows).
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: metrics_caught_up(s), timeout=10, what="metrics")
            s.snapshot()
            s.current_secrets = [(world.vault_record(k) or {})["api_secret"] for k in KEYS]
            s.exit_code = daemon.terminate()
            yield s
        finally:
            daemon.close()
            audit.engine.dispose()


def test_every_key_is_rotated_again_and_again(session: Session) -> None:
    """The primary and both subaccounts each got two or more successful scheduled runs."""
    for key in KEYS:
        runs = session.runs(key, RunStatus.SUCCEEDED)
        assert len(runs) >= 2, key
        assert {r.trigger for r in runs} == {"scheduled"}


def test_every_key_keeps_its_promises(session: Session) -> None:
    """After the session each key has one working secret, current in Vault; no run left open."""
    for key in KEYS:
        assert violations(session.world, key, session.audit) == []


def test_sigterm_stops_the_daemon_with_exit_code_0(session: Session) -> None:
    """SIGTERM makes the daemon stop taking work and exit 0."""
    assert session.exit_code == 0
    assert session.daemon.event("daemon_stopped") is not None


def test_subaccounts_go_before_the_primary_when_due_together(session: Session) -> None:
    """On the first start every key is due; the primary starts after the subaccounts finished."""
    first = {k: min(session.runs(k), key=lambda r: r.started_at) for k in KEYS}
    for sub in SUBACCOUNTS:
        finished = first[sub].finished_at
        assert finished is not None
        assert first[PRIMARY].started_at >= finished


def test_health_and_readiness_answer_200(session: Session) -> None:
    """/healthz answers while starting; /readyz once the database, Vault and Vonage check out."""
    assert session.healthz == 200
    assert session.readyz == 200


def test_metrics_count_rotations_as_they_happen(session: Session) -> None:
    """rotator_rotations_total and the last-success time grow between two scrapes."""
    before, after = session.metrics
    for key in KEYS:
        labels = {"api_key": key, "outcome": "succeeded"}
        assert (metric(after, "rotator_rotations_total", **labels) or 0) > (
            metric(before, "rotator_rotations_total", **labels) or 0
        )
        assert (metric(after, "rotator_last_success_timestamp_seconds", api_key=key) or 0) > (
            metric(before, "rotator_last_success_timestamp_seconds", api_key=key) or 0
        )


def test_metrics_expose_the_per_key_gauges(session: Session) -> None:
    """Every key has an age, a maximum age (interval + jitter + grace), next due, failure flag."""
    text = session.metrics[-1]
    for key in KEYS:
        assert metric(text, "rotator_secret_age_seconds", api_key=key) is not None
        assert metric(text, "rotator_max_secret_age_seconds", api_key=key) == 1
        assert metric(text, "rotator_next_rotation_timestamp_seconds", api_key=key) is not None
        assert metric(text, "rotator_last_run_failed", api_key=key) == 0
    assert metric(text, "rotator_up") == 1
    assert 'rotator_build_info{version="' in text
    assert metric(text, "rotator_rotation_duration_seconds_count", outcome="succeeded")


def test_status_json_shows_each_key_moving_on(session: Session) -> None:
    """/status lists every key with its last result, and its next due time moves forward."""
    before, after = ({k["api_key"]: k for k in s["keys"]} for s in session.statuses)
    assert set(after) == set(KEYS)
    for key in KEYS:
        assert after[key]["last_run"]["status"] == "succeeded"
        assert after[key]["next_due"] > before[key]["next_due"]
        assert after[key]["failing"] is False
    assert after[PRIMARY]["primary"] is True


def test_status_page_is_html_for_a_browser(session: Session) -> None:
    """With Accept: text/html, /status is a page with one row per key."""
    page = session.pages[-1]
    assert page.startswith("<!doctype html>")
    assert page.count("<tr") == 1 + len(KEYS)
    assert all(key in page for key in KEYS)


def test_key_page_shows_the_runs_the_daemon_remembers(session: Session) -> None:
    """/status/keys/<key> draws one mark per run from memory, and the last run's steps with
    their Vonage request ids."""
    page = session.key_pages[-1]
    marks = page.count('<circle class="run ')
    assert marks >= 2
    assert marks <= len(session.runs(KEYS[1]))
    steps = page.split("<table class=steps>", 1)[1].split("</table>", 1)[0]
    request_ids = {
        e.request_id
        for run in session.runs(KEYS[1])
        for e in session.audit.events(run_id=run.id)
        if e.request_id
    }
    assert any(rid in steps for rid in request_ids)


def test_logs_are_json_lines_without_secrets(session: Session) -> None:
    """Every stdout line is JSON, and no secret value (old or new) appears in it."""
    output = session.daemon.output()
    for line in output.splitlines():
        assert line.startswith("{"), line
    for value in [PRIMARY_SECRET, *SUBACCOUNTS.values(), *session.current_secrets]:
        assert value not in output
