"""The daemon's Prometheus metrics: names the alert rules rely on, in a registry of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from rotator.metrics import Metrics

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def text(metrics: Metrics) -> str:
    return metrics.render()[0].decode()


def test_secret_age_is_computed_at_scrape_time() -> None:
    """The age is now minus the last success, so it grows between rotations by itself."""
    clock = [NOW]
    metrics = Metrics("1.2.3", clock=lambda: clock[0])
    metrics.set_key(
        "k1", last_success=NOW, next_due=None, max_age_seconds=60, last_run_failed=False
    )
    clock[0] = NOW + timedelta(seconds=90)
    assert 'rotator_secret_age_seconds{api_key="k1"} 90.0' in text(metrics)


def test_exposition_has_the_contract_names() -> None:
    """Every name deploy/prometheus/rotator-rules.yml and dashboards use is there."""
    metrics = Metrics("1.2.3", clock=lambda: NOW)
    metrics.observe_run("k1", "rolled_back", 2.5)
    metrics.set_key(
        "k1",
        last_success=NOW - timedelta(hours=1),
        next_due=NOW + timedelta(hours=1),
        max_age_seconds=3600,
        last_run_failed=True,
    )
    out = text(metrics)
    for line in (
        'rotator_rotations_total{api_key="k1",outcome="rolled_back"} 1.0',
        'rotator_rotation_duration_seconds_count{outcome="rolled_back"} 1.0',
        'rotator_secret_age_seconds{api_key="k1"} 3600.0',
        'rotator_max_secret_age_seconds{api_key="k1"} 3600.0',
        'rotator_last_run_failed{api_key="k1"} 1.0',
        "rotator_up 1.0",
        'rotator_build_info{version="1.2.3"} 1.0',
    ):
        assert line in out, line
    due = next(x for x in out.splitlines() if x.startswith("rotator_next_rotation_timestamp"))
    assert float(due.split()[-1]) == (NOW + timedelta(hours=1)).timestamp()


def test_removed_key_leaves_no_stale_series() -> None:
    """A key discovery dropped disappears from every per-key gauge (no alert on a ghost)."""
    metrics = Metrics("1", clock=lambda: NOW)
    metrics.set_key("gone", last_success=NOW, next_due=NOW, max_age_seconds=1, last_run_failed=True)
    metrics.remove_key("gone")
    assert 'api_key="gone"' not in text(metrics).replace("rotator_rotations", "")


def test_registry_is_not_the_global_one() -> None:
    """Two Metrics (tests, or a daemon restarted in-process) never clash in a shared registry."""
    Metrics("a")
    Metrics("b")
    assert "rotator_up" not in {m.name for m in REGISTRY.collect()}


def test_openmetrics_is_served_when_asked_for() -> None:
    """A scraper that accepts OpenMetrics gets it (and its content type)."""
    body, content_type = Metrics("1").render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_grace_until_is_exposed_for_a_postponed_key() -> None:
    """A key postponed by a grace period shows when it ends; 0 when none."""
    metrics = Metrics("1.2.3", clock=lambda: NOW)
    until = NOW + timedelta(minutes=30)
    common = {"last_success": NOW, "next_due": until, "max_age_seconds": 60}
    metrics.set_key("k1", last_run_failed=False, grace_until=until, **common)  # type: ignore[arg-type]
    metrics.set_key("k2", last_run_failed=False, **common)  # type: ignore[arg-type]
    from prometheus_client.parser import text_string_to_metric_families

    values = {
        sample.labels["api_key"]: sample.value
        for family in text_string_to_metric_families(text(metrics))
        if family.name == "rotator_grace_until_timestamp_seconds"
        for sample in family.samples
    }
    assert values == {"k1": until.timestamp(), "k2": 0.0}
