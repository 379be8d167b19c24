"""What every response shape shares: ``Shape`` (a serializer that is also the schema), the field
helpers, the error shapes, the path parameters, the API token, and the enum names of the schema."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers as s
from rest_framework.fields import SkipField

from agileplus.api.roles import ROLES
from agileplus.dispatch.models import JobState
from agileplus.features.lifecycles import FeatureState, WPState
from harnesses.git import redact_url


class Shape(s.Serializer):
    """A response shape. A dict a selector built is read key by key: DRF's generic lookup (made for
    objects and dotted sources) was most of the cost of rendering a feature's status
    (``bench/bench_api_render.py``). Anything else (a model instance, a dotted source, a missing
    key) takes DRF's own path, so the output is the same either way."""

    def to_representation(self, instance) -> dict:
        if type(instance) is not dict:
            return super().to_representation(instance)
        rendered = {}
        for field in self._readable_fields:
            source = field.source_attrs
            if len(source) == 1 and source[0] in instance:
                value = instance[source[0]]
            else:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
            rendered[field.field_name] = None if value is None else field.to_representation(value)
        return rendered


def enum(values, *, null: bool = False, **kwargs) -> s.Field:
    """A string from ``values``, inlined in the schema (no shared enum components to collide)."""
    schema: dict = {"type": "string", "enum": list(values) + ([None] if null else [])}
    if null:
        schema["nullable"] = True
    field_class = extend_schema_field(schema)(type("EnumField", (s.CharField,), {}))
    return field_class(allow_null=null, **kwargs)


def text(**kwargs) -> s.Field:
    return s.CharField(allow_blank=True, **kwargs)


def maybe(field_class, **kwargs) -> s.Field:
    return field_class(allow_null=True, **kwargs)


def next_page(field_class, param: str = "after") -> s.Field:
    """A page's cursor: what the next page's ``param`` is, null on the last page."""
    return maybe(field_class, help_text=f"pass as `{param}` for the next page; null on the last page")


@extend_schema_field({"type": "string"})
class RedactedURLField(s.CharField):
    """A repository URL without the credentials it may carry."""

    def to_representation(self, value) -> str:
        return redact_url(value)


class ErrorDetailOut(Shape):
    code = s.CharField(help_text="machine-readable: invalid, not_found, illegal_transition, blocked_by_dependency, "
                                 "stale_state, permission_denied, not_authenticated, throttled, …")
    message = s.CharField()
    field = s.CharField(required=False, help_text="the request field (or path part) at fault")
    fix = s.CharField(required=False, help_text="what to do about it")
    details = s.DictField(required=False, help_text="e.g. blocked_by: [WP codes]")


class ErrorOut(Shape):
    error = ErrorDetailOut()


ERROR_TEXT = {
    400: "invalid input; `field` names it",
    401: "no or bad token",
    403: "your role may not do this",
    404: "no such feature, work package, job or endpoint",
    409: "refused: illegal transition, blocked by a dependency, stale state, or a conflict",
    429: "rate limited; see Retry-After",
}


def with_errors(ok: dict, *codes: int) -> dict:
    """``ok`` plus the error responses every endpoint can give (400, 401, 404, 429) and ``codes``."""
    out = dict(ok)
    for code in sorted({400, 401, 404, 429, *codes}):
        out[code] = OpenApiResponse(ErrorOut, description=ERROR_TEXT[code])
    return out


SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="feature slug, number or unique slug prefix",
                        pattern=r"^[-a-zA-Z0-9_]+$")


WP = OpenApiParameter("wp", str, OpenApiParameter.PATH, description="work package code (WP02, wp2 or 2)",
                      pattern=r"^[A-Za-z0-9]{1,20}$")


JOB = OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="job id, e.g. job_4k2m9x1q0z",
                       pattern=r"^[A-Za-z0-9_.\-]{1,40}$")


REQUEST = OpenApiParameter("request_id", int, OpenApiParameter.PATH,
                           description="the id a review or a move answered with (202)")


class TokenOut(Shape):
    username = s.CharField()
    role = enum(ROLES)
    token = s.CharField()


# Stable names for the choice sets that share a field name ("state", "to"). Served through
# SpectacularAPIView(custom_settings=...) in urls.py; belongs in SPECTACULAR_SETTINGS.
ENUM_NAME_OVERRIDES = {
    "WorkPackageStateEnum": list(WPState.ALL),
    "JobStateEnum": list(JobState.ALL),
    "FeatureStateEnum": list(FeatureState.ALL),
}
