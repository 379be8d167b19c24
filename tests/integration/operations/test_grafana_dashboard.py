"""docker/grafana/agileplus-dashboard.json asks only for metrics /metrics serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agileplus.operations import metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "docker" / "grafana" / "agileplus-dashboard.json"


@pytest.mark.django_db
def test_every_metric_the_dashboard_queries_is_served(settings):
    settings.METRICS_REFRESH_SECONDS = 0
    served = {s.name for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    served |= {f.name for f in text_string_to_metric_families(metrics.render().decode())}
    queries = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    asked = {name for q in queries for name in re.findall(r"\bagileplus_[a-z_]+", q)}
    # Histograms without a row yet have no _bucket sample: their family name counts.
    missing = {n for n in asked if n not in served and re.sub(r"_(bucket|total)$", "", n) not in served}
    assert asked and not missing
