"""The REST API: thin views. Parse and check the caller's role, call the same services as the
CLI, render. The actor in every audit entry is the authenticated identity."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agileplus.api import serializers as s
from agileplus.api.roles import actor_for_user, role_of
from agileplus.api.services import create_api_token
from agileplus.audit.chain import entry_as_dict, verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.core.errors import NotFound, PermissionDenied
from agileplus.dispatch import costs
from agileplus.dispatch import selectors as jobs
from agileplus.dispatch import services as dispatch
from agileplus.dispatch.models import DispatchJob, Worker
from agileplus.features import selectors as features
from agileplus.features.models import Project
from agileplus.features.services import get_feature, get_wp
from agileplus.review import services as review
from agileplus.review.autodispatch import start_feature
from agileplus.review.models import ReviewReport


def health(request):
    """Liveness and database reachability, for load balancers and compose health checks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


# --- roles ---------------------------------------------------------------------------------
WRITE_ROLES = {
    "transition": {"human", "ci", "admin", "agent"},  # agents: only their own WP, never to done
    "move": {"human", "ci", "admin"},
    "implement": {"human", "ci", "admin"},
    "review": {"human", "ci", "admin"},
    "cancel": {"human", "ci", "admin", "agent"},  # agents: only their own job
    "report": {"human", "admin", "agent"},  # agents: only their own job
    "tokens": {"admin"},
}


class Role(BasePermission):
    """Allows the roles of the view's ``action`` (WRITE_ROLES); every role may read."""

    message = "your role may not do this"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF turns this into 401 (authentication failed or missing)
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return role_of(request.user) in WRITE_ROLES.get(getattr(view, "action_name", ""), set())


def _agent_owns(request, job: DispatchJob) -> None:
    actor = actor_for_user(request.user)
    if actor.kind == "agent" and job.harness != actor.name:
        raise PermissionDenied(f"{actor} may only act on its own jobs, not {job.id} ({job.harness})",
                               field="job", fix="use the token of the agent that runs this job")


def _page(request: Request, default: int = 100, maximum: int = 1000) -> tuple[int, int]:
    data = s.LogFilter(data={"after": request.query_params.get("after", 0),
                             "limit": request.query_params.get("limit", default)})
    data.is_valid(raise_exception=True)
    return data.validated_data["after"], min(data.validated_data["limit"], maximum)


class Base(APIView):
    permission_classes = [Role]
    action_name = ""

    def actor(self):
        return actor_for_user(self.request.user)


# --- read ----------------------------------------------------------------------------------
class ProjectList(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"results": [{"name": p.name, "repo_url": p.repo_url, "main_branch": p.main_branch}
                                     for p in Project.objects.order_by("name")]})


class FeatureList(Base):
    @extend_schema(operation_id="features_list", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"results": features.features_overview()})


class FeatureDetail(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        feature = get_feature(slug)
        status = features.feature_status(feature)
        status["cost_usd"] = str(costs.feature_cost(feature.pk))
        return Response(status)


class WPList(Base):
    @extend_schema(operation_id="wps_list", responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        return Response({"results": features.feature_status(get_feature(slug))["work_packages"]})


class WPDetail(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str, wp: str):
        feature = get_feature(slug)
        code = get_wp(feature, wp).code
        item = next(w for w in features.feature_status(feature)["work_packages"] if w["code"] == code)
        return Response(item)


class AuditList(Base):
    @extend_schema(parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        feature = get_feature(slug)
        after, limit = _page(request)
        rows = list(AuditEntry.objects.filter(feature=feature, seq__gt=after).select_related("feature", "wp")
                    .order_by("seq")[:limit])
        return Response({"results": [entry_as_dict(e) for e in rows],
                         "next_after": rows[-1].seq if len(rows) == limit else None})


class AuditVerify(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        return Response(verify_chain(get_feature(slug)).as_dict())


class CostList(Base):
    @extend_schema(parameters=[OpenApiParameter("by", str, enum=list(costs.GROUPINGS))],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        feature = get_feature(slug)
        query = s.CostFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = costs.ledger(feature_id=feature.pk, by=query.validated_data["by"])
        return Response({"results": [r.as_dict() for r in rows],
                         "total_cost_usd": str(sum((r.cost_usd for r in rows), costs.ZERO))})


class ReviewList(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str, wp: str):
        wp_obj = get_wp(get_feature(slug), wp)
        reports = ReviewReport.objects.filter(wp=wp_obj).order_by("-created_at")[:50]
        return Response({"results": [{"id": r.pk, "approved": r.approved, "actor": r.actor, "head_sha": r.head_sha,
                                      "checks": r.checks, "text": r.text, "created_at": r.created_at}
                                     for r in reports]})


class JobList(Base):
    @extend_schema(operation_id="jobs_list", parameters=[OpenApiParameter("feature", str), OpenApiParameter("state", str),
                               OpenApiParameter("harness", str), OpenApiParameter("limit", int)],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = s.JobFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        _after, limit = _page(request, default=50, maximum=500)
        data = query.validated_data
        feature = get_feature(data["feature"]) if data.get("feature") else None
        rows = jobs.list_jobs(feature=feature, state=data.get("state"), limit=limit)
        if data.get("harness"):
            rows = [j for j in rows if j.harness == data["harness"]]
        return Response({"results": [{"id": j.id, "feature": j.feature.slug, "wp": j.wp.code, "harness": j.harness,
                                      "state": j.state, "attempt": j.attempt, "worker": j.worker,
                                      "queued_at": j.queued_at} for j in rows]})


class JobDetail(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, job_id: str):
        return Response(jobs.job_summary(jobs.get_job(job_id)))


class JobLog(Base):
    action_name = "report"

    @extend_schema(parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, job_id: str):
        job = jobs.get_job(job_id)
        after, limit = _page(request, default=500, maximum=5000)
        rows = jobs.log_lines(job, after_seq=after)[:limit]
        return Response({"results": [{"seq": r.seq, "time": r.timestamp, "stream": r.stream, "line": r.line}
                                     for r in rows], "next_after": rows[-1].seq if rows else after})

    @extend_schema(request=s.LogIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, job_id: str):
        body = s.LogIn(data=request.data)
        body.is_valid(raise_exception=True)
        job = jobs.get_job(job_id)
        _agent_owns(request, job)
        added = dispatch.append_report(job, body.validated_data["lines"], actor=self.actor())
        return Response({"job": job.id, "added": added}, status=201)


class JobCancel(Base):
    action_name = "cancel"

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, job_id: str):
        job = jobs.get_job(job_id)
        _agent_owns(request, job)
        job = dispatch.cancel_job(job.id, actor=self.actor())
        return Response({"id": job.id, "state": job.state, "cancel_requested": job.cancel_requested})


class EventList(Base):
    @extend_schema(parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int),
                               OpenApiParameter("feature", str), OpenApiParameter("subject", str)],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = s.EventFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        feature = get_feature(data["feature"]) if data.get("feature") else None
        rows = features.list_events(feature=feature, pattern=data.get("subject"), after=data["after"],
                                    limit=data["limit"])
        return Response({"results": [e.as_message() for e in rows],
                         "next_after": rows[-1].pk if rows else data["after"]})


class AgentList(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"results": jobs.agents_overview()})


class WorkerList(Base):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"results": [{"hostname": w.hostname, "harnesses": w.harnesses, "concurrency": w.concurrency,
                                      "active_sessions": w.active_sessions, "last_heartbeat": w.last_heartbeat,
                                      "stopped_at": w.stopped_at} for w in Worker.objects.order_by("hostname")]})


# --- write ---------------------------------------------------------------------------------
class WPTransition(Base):
    action_name = "transition"

    @extend_schema(request=s.TransitionIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, wp: str):
        body = s.TransitionIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        wp_obj = get_wp(get_feature(slug), wp)
        actor = self.actor()
        if actor.kind == "agent":
            latest = jobs.latest_job(wp_obj)
            if latest is None or latest.harness != actor.name:
                raise PermissionDenied(f"{actor} may only move the WP it works on", field="wp")
        result = review.move_wp(wp_obj, data["to"], actor=actor, expected_source=data.get("expected_state"),
                                metadata={"note": data["note"]} if data.get("note") else None)
        return Response(_moved(result))


class WPMove(Base):
    action_name = "move"

    @extend_schema(request=s.MoveIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, wp: str):
        body = s.MoveIn(data=request.data)
        body.is_valid(raise_exception=True)
        result = review.move_wp(get_wp(get_feature(slug), wp), body.validated_data["to"], actor=self.actor())
        return Response(_moved(result))


class WPReview(Base):
    action_name = "review"

    @extend_schema(request=s.ReviewIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, wp: str):
        body = s.ReviewIn(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = review.run_review(get_wp(get_feature(slug), wp), actor=self.actor(),
                                    apply=body.validated_data["apply"])
        report = outcome.report
        return Response({"id": report.pk, "approved": report.approved, "checks": report.checks, "text": report.text})


class Implement(Base):
    action_name = "implement"

    @extend_schema(request=s.ImplementIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str):
        body = s.ImplementIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        feature = get_feature(slug)
        if data.get("all"):
            queued = start_feature(feature, harness=data.get("agent"), actor=self.actor(),
                                   timeout_seconds=data.get("timeout"), retries=data.get("retries"))
        else:
            queued = [dispatch.enqueue_job(get_wp(feature, data["wp"]), harness=data.get("agent"), actor=self.actor(),
                                           timeout_seconds=data.get("timeout"), retries=data.get("retries"))]
        return Response({"feature": feature.slug, "jobs": [{"id": j.id, "wp": j.wp.code, "harness": j.harness,
                                                            "state": j.state} for j in queued]}, status=202)


class TokenCreate(Base):
    action_name = "tokens"

    @extend_schema(request=s.TokenIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        body = s.TokenIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        key = create_api_token(data["username"], data["role"], agent=data.get("agent", ""))
        return Response({"username": data["username"], "role": data["role"], "token": key}, status=201)


def _moved(result) -> dict:
    merge = (result.entry.metadata or {}).get("merge")
    return {"wp": result.wp.code if result.wp else None, "from": result.source, "to": result.target,
            "actor": result.entry.actor, "audit_entry": result.entry.seq, "merge": merge,
            "unblocked": [u.code for u in result.unblocked]}


def not_found(request, exception=None):
    raise NotFound("no such endpoint", fix="see /api/docs/")
