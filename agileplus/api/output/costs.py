"""Response shapes of the cost reports (``dispatch/cost_reports.py``): what the spend bought."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import Shape
from agileplus.api.output.dispatch import CostRowOut


class WastedAttemptOut(Shape):
    # Read from ``cost_reports.outcomes()["wasted"]``.
    wp = s.CharField(help_text="feature slug and WP code")
    job_id = s.CharField()
    attempt = s.IntegerField()
    fate = s.CharField(help_text="killed | timed_out | failed | cancelled | rejected | ejected")
    cost_usd = s.CharField(allow_null=True, help_text="decimal string; null = unknown (a model with no price)")


class CostOutcomesOut(Shape):
    # Read from ``cost_reports.outcomes()``.
    merged_wps = s.IntegerField(help_text="WPs merged (done)")
    merged_cost_usd = s.CharField(allow_null=True, help_text="what the merged WPs' attempts cost, wasted ones included")
    cost_per_merged_wp_usd = s.CharField(allow_null=True)
    wasted_attempts = s.IntegerField(help_text="attempts that did not lead to a merge")
    wasted_cost_usd = s.CharField(allow_null=True)
    wasted_by_fate = s.DictField(child=s.IntegerField())
    wasted = WastedAttemptOut(many=True)


class CostReportOut(Shape):
    results = CostRowOut(many=True)
    total_cost_usd = s.CharField(allow_null=True, help_text="decimal string; null = unknown")
    outcomes = CostOutcomesOut()
