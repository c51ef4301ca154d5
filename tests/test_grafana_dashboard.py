"""deploy/grafana/rotator-dashboard.json: the structure Grafana's dashboard schema requires
(``@grafana/schema`` 13.2.3, ``raw/dashboard/x/types.gen.d.ts``: the required fields of
Dashboard, Panel, GridPos and FieldConfigSource; Grafana itself cannot be installed here), the
full type check against that package with TypeScript when scripts/check_grafana_dashboard has
installed it, and every PromQL query naming only metrics rotator really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric

from rotator.devtools.grafana_schema import check
from rotator.events.deliverer import EventMetrics
from rotator.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "rotator-dashboard.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exported() -> set[str]:
    """Every series name the daemon's registry can expose (counters' and histograms' too)."""
    metrics = Metrics("test")
    EventMetrics(metrics.registry)
    names: set[str] = set()
    family: Metric
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in SUFFIXES.get(family.type, ()))
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_dashboard_has_the_fields_the_schema_requires(dashboard: dict[str, Any]) -> None:
    """schemaVersion is a number, time has from/to strings, panels are a list, uid is stable."""
    assert isinstance(dashboard["schemaVersion"], int)
    assert isinstance(dashboard["time"]["from"], str)
    assert isinstance(dashboard["time"]["to"], str)
    assert isinstance(dashboard["panels"], list)
    assert dashboard["panels"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])


def test_every_panel_is_well_formed(dashboard: dict[str, Any]) -> None:
    """Each panel: a type, an integer gridPos inside 24 columns, fieldConfig defaults and
    overrides, unique ids, and unique refIds among its targets."""
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert isinstance(panel["type"], str)
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert pos["w"] > 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        assert set(panel["fieldConfig"]) >= {"defaults", "overrides"}
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    """No two panels share a grid cell (Grafana would push one down)."""
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_every_query_names_an_exported_metric(dashboard: dict[str, Any]) -> None:
    """A typo'd or invented metric name in any panel's PromQL fails here."""
    known = exported()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"\brotator_[a-z_]+", target["expr"]))
            assert used, panel["title"]
            assert used <= known, (panel["title"], used - known)


def test_dashboard_covers_what_the_issue_asks(dashboard: dict[str, Any]) -> None:
    """Secret age, next due, failures, rotation duration and event delivery lag all appear."""
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "rotator_secret_age_seconds",
        "rotator_next_rotation_timestamp_seconds",
        "rotator_last_run_failed",
        "rotator_rotation_duration_seconds_bucket",
        "rotator_event_delivery_lag_seconds_bucket",
    ):
        assert metric in exprs, metric


def test_a_made_up_metric_would_be_caught() -> None:
    """The name check is real: a metric rotator does not export is not in the known set."""
    known = exported()
    assert "rotator_rotations_total" in known
    assert "rotator_secret_age_total" not in known


SCHEMA_DIR = DASHBOARD.parent.parent.parent / ".cache" / "grafana-schema"
needs_schema = pytest.mark.skipif(
    not (SCHEMA_DIR / "node_modules" / ".bin" / "tsc").exists(),
    reason="run scripts/check_grafana_dashboard once (npm installs @grafana/schema, typescript)",
)


@needs_schema
def test_dashboard_type_checks_against_grafana_schema() -> None:
    """tsc --strict accepts the file as @grafana/schema's Dashboard type."""
    ok, output = check(SCHEMA_DIR, DASHBOARD.read_text())
    assert ok, output


@needs_schema
def test_schema_check_refuses_a_broken_dashboard(dashboard: dict[str, Any]) -> None:
    """The type check is real: a gridPos width given as text is refused."""
    broken = json.loads(json.dumps(dashboard))
    broken["panels"][0]["gridPos"]["w"] = "wide"
    ok, output = check(SCHEMA_DIR, json.dumps(broken))
    assert not ok
    assert "TS2322" in output  # "Type .string. is not assignable to type .number."
