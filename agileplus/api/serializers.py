"""Request bodies and query parameters: validated here, named in errors, never trusted further."""

from __future__ import annotations

from rest_framework import serializers

from agileplus.api.models import ApiRole
from agileplus.dispatch.costs import GROUPINGS
from agileplus.dispatch.models import JobState
from agileplus.features.lifecycles import WP_STATE_ALIASES, WPState

STATE_CHOICES = sorted(set(WPState.ALL) | set(WP_STATE_ALIASES))


class TransitionIn(serializers.Serializer):
    to = serializers.ChoiceField(choices=STATE_CHOICES, help_text="target state (planned, doing, for_review, "
                                                                     "done, blocked; 'review' = for_review)")
    expected_state = serializers.ChoiceField(choices=STATE_CHOICES, required=False,
                                             help_text="refuse with 409 unless the WP is in this state now")
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class MoveIn(serializers.Serializer):
    to = serializers.ChoiceField(choices=STATE_CHOICES)


class ImplementIn(serializers.Serializer):
    wp = serializers.RegexField(r"^(?i:wp)?\d{1,4}$", required=False, help_text="WP02 (or omit with all=true)")
    all = serializers.BooleanField(required=False, default=False)
    agent = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,63}$", required=False)
    timeout = serializers.IntegerField(required=False, min_value=1, max_value=7 * 24 * 3600)
    retries = serializers.IntegerField(required=False, min_value=0, max_value=20)

    def validate(self, data):
        if bool(data.get("wp")) == bool(data.get("all")):
            raise serializers.ValidationError({"wp": "give either wp or all=true"})
        return data


class ReviewIn(serializers.Serializer):
    apply = serializers.BooleanField(required=False, default=False)


class LogIn(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField(max_length=4000, allow_blank=True),
                                 min_length=1, max_length=500)


class TokenIn(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$")
    role = serializers.ChoiceField(choices=[r for r, _ in ApiRole.ROLES])
    agent = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,63}$", required=False, allow_blank=True, default="")


class JobFilter(serializers.Serializer):
    feature = serializers.CharField(required=False, max_length=100)
    state = serializers.ChoiceField(choices=JobState.ALL, required=False)
    harness = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,63}$", required=False)


class EventFilter(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    feature = serializers.CharField(required=False, max_length=100)
    subject = serializers.CharField(required=False, max_length=300)


class LogFilter(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=5000, default=500)


class CostFilter(serializers.Serializer):
    by = serializers.ChoiceField(choices=GROUPINGS, required=False, default="agent")
