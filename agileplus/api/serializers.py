"""Request bodies and query parameters: validated here, named in errors, never trusted further.
(Responses are rendered by the serializers in ``agileplus.api.output``.)"""

from __future__ import annotations

from rest_framework import serializers

from agileplus.api.roles import ROLES
from agileplus.api.tokens import AGENT_RE, USERNAME_RE
from agileplus.dispatch.cost_reports import GROUPINGS
from agileplus.dispatch.models import JobState
from agileplus.features.lifecycles import WP_STATE_ALIASES, WPState

STATE_CHOICES = sorted(set(WPState.ALL) | set(WP_STATE_ALIASES))
WP_CODE = r"^([Ww][Pp])?[0-9]{1,4}$"
HARNESS = AGENT_RE.pattern
USERNAME = USERNAME_RE.pattern


class TransitionIn(serializers.Serializer):
    to = serializers.ChoiceField(choices=STATE_CHOICES, help_text="target state (planned, doing, for_review, "
                                                                     "done, blocked; 'review' = for_review)")
    expected_state = serializers.ChoiceField(
        choices=STATE_CHOICES, required=False,
        help_text="optimistic check: refuse with 409 stale_state unless the WP is in this state now")
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                 help_text="recorded in the audit entry's metadata")


class MoveIn(serializers.Serializer):
    to = serializers.ChoiceField(choices=STATE_CHOICES, help_text="to done: governance, merge, then transition")


class ImplementIn(serializers.Serializer):
    wps = serializers.ListField(child=serializers.RegexField(WP_CODE), required=False, min_length=1,
                                max_length=100, help_text='WPs to dispatch, e.g. ["WP01", "WP03"] (all or none)')
    wp = serializers.RegexField(WP_CODE, required=False, help_text="one WP (same as wps: [wp])")
    all = serializers.BooleanField(required=False, default=False,
                                   help_text="queue every ready WP and keep dispatching as merges unblock more")
    agent = serializers.RegexField(HARNESS, required=False, help_text="harness (default: the feature's config)")
    timeout = serializers.IntegerField(required=False, min_value=1, max_value=7 * 24 * 3600)
    retries = serializers.IntegerField(required=False, min_value=0, max_value=20)
    fresh = serializers.BooleanField(required=False, default=False,
                                     help_text="`implement --fresh`: start the one WP over from the current main on "
                                               "a new branch; its old branch is kept on the origin under salvage/")
    candidates = serializers.IntegerField(required=False, min_value=2, max_value=100,
                                          help_text="best of N: run N candidates of the one WP and keep the best")
    agents = serializers.ListField(child=serializers.RegexField(HARNESS), required=False, min_length=1,
                                   max_length=100, help_text="with candidates: harnesses for the candidates, in turn")
    quorum = serializers.ChoiceField(["first_pass", "best_of_finished", "all"], required=False,
                                     help_text="with candidates: when the choice is made")

    def validate(self, data):
        given = [name for name in ("wps", "wp", "all") if data.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError({"wps": "give exactly one of wps, wp or all=true"})
        if data.get("wp"):
            data["wps"] = [data.pop("wp")]
        if data["fresh"] and len(data.get("wps") or []) != 1:
            raise serializers.ValidationError({"fresh": "a fresh start is for one WP: give wp (not wps or all)"})
        if data.get("candidates") and (data["fresh"] or len(data.get("wps") or []) != 1):
            raise serializers.ValidationError({"candidates": "candidates are for one planned WP: give wp, "
                                                             "without fresh or all"})
        return data


class ReviewIn(serializers.Serializer):
    apply = serializers.BooleanField(required=False, default=False,
                                     help_text="approved → done (merge); changes requested → doing")


class LogIn(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField(max_length=4000, allow_blank=True),
                                 min_length=1, max_length=500)


class TokenIn(serializers.Serializer):
    username = serializers.RegexField(USERNAME)
    role = serializers.ChoiceField(choices=list(ROLES))
    agent = serializers.RegexField(HARNESS, required=False, allow_blank=True, default="",
                                   help_text="for role agent: the harness it acts as")


class LoginIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1000, trim_whitespace=False)


class JobFilter(serializers.Serializer):
    feature = serializers.CharField(required=False, max_length=150, help_text="feature slug or number")
    status = serializers.ChoiceField(choices=JobState.ALL, required=False)
    state = serializers.ChoiceField(choices=JobState.ALL, required=False, help_text="same as status")
    harness = serializers.RegexField(HARNESS, required=False)
    cursor = serializers.CharField(required=False, max_length=400, help_text="next_cursor of the previous page")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)

    def validate(self, data):
        if data.get("status") and data.get("state") and data["status"] != data["state"]:
            raise serializers.ValidationError({"state": "status and state disagree; give one"})
        data["status"] = data.get("status") or data.pop("state", None)
        return data


class EventFilter(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**62, default=0,
                                     help_text="the last event id seen (next_after of the previous page)")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    feature = serializers.CharField(required=False, max_length=150)
    subject = serializers.CharField(required=False, max_length=300,
                                    help_text="NATS-style pattern, e.g. agileplus.feature.*.wp.*.state.changed")


class PageFilter(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**31, default=0,
                                     help_text="the last seq seen (next_after of the previous page)")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class WPPage(serializers.Serializer):
    after = serializers.RegexField(r"^[A-Za-z0-9]{1,20}$", required=False, default="",
                                   help_text="the last WP code seen (work_packages_page.next_after)")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=200)


class LogFilter(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**31, default=0,
                                     help_text="the last line seq seen")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=5000, default=500)


class CostFilter(serializers.Serializer):
    by = serializers.ChoiceField(choices=GROUPINGS, required=False, default="agent")
