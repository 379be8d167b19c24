"""The REST API: thin views. Parse (``serializers``), check the caller's role (``roles``), call the
same services as the CLI, render with the response's serializer (``output``, also its schema). The
actor in every audit entry is the authenticated identity, never a request field. Jobs, costs,
events, agents and workers: ``views_jobs``."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agileplus.api import output as out
from agileplus.api import queries
from agileplus.api import serializers as s
from agileplus.api.auth import RoleTokenAuthentication
from agileplus.api.errors import error_body
from agileplus.api.pagination import after_page, next_url
from agileplus.api.roles import RolePermission, caller_for_user, ensure_owns_wp
from agileplus.api.services import create_api_token, dispatch_wps, obtain_token
from agileplus.api.throttles import ScopedThrottle, auth_wait
from agileplus.audit.chain import entry_as_dict, verify_chain
from agileplus.core.errors import NotFound, StaleState
from agileplus.dispatch import costs
from agileplus.dispatch.fresh import start_fresh
from agileplus.features import selectors as features
from agileplus.features.services import get_feature, get_wp
from agileplus.review import requests as review_requests
from agileplus.review.models import ReviewRequest
from agileplus.review.selectors import merge_queues
from agileplus.workflow.candidates import plan_candidates, start_candidates
from agileplus.workflow.selectors import latest_round, round_summary
from agileplus.workflow.services import start_feature


def health(request):
    """Liveness and database reachability, for load balancers and compose health checks."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse(error_body("database_unavailable", "the farm's database cannot be reached from this server",
                                       fix="check that this server reaches the host in DATABASE_URL"), status=503)
    return JsonResponse({"status": "ok"})


def parse(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class Base(APIView):
    authentication_classes = [RoleTokenAuthentication, SessionAuthentication]
    permission_classes = [RolePermission]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "write"  # POSTs only (see throttles)
    action_name = ""  # the write this view does, for roles.MAY

    def initial(self, request, *args, **kwargs):
        try:
            super().initial(request, *args, **kwargs)
        except exceptions.AuthenticationFailed:
            wait = auth_wait(request)
            if wait is not None:
                raise exceptions.Throttled(wait) from None
            raise

    def caller(self):
        return caller_for_user(self.request.user)

    def actor(self):
        return self.caller().actor


def read(ok, *params, tags: list[str], **kwargs):
    return extend_schema(responses=out.with_errors({200: ok}), parameters=list(params), tags=tags, **kwargs)


def write(ok, body, *params, status: int = 200, tags: list[str], errors=(400, 403, 409), **kwargs):
    """A write's schema; ``ok`` is its answer's shape, or ``{status: shape}`` where it has two."""
    answers = ok if isinstance(ok, dict) else {status: ok}
    return extend_schema(request=body, responses=out.with_errors(answers, *errors), parameters=list(params),
                         tags=tags, **kwargs)


# --- projects and features ---------------------------------------------------------------------
class ProjectList(Base):
    @read(out.ProjectListOut, tags=["features"], operation_id="projects_list")
    def get(self, request):
        return Response(out.ProjectListOut({"results": queries.projects()}).data)


class FeatureList(Base):
    @read(out.FeatureListOut, tags=["features"], operation_id="features_list",
          description="One row per feature with its WP counts (`agileplus status`).")
    def get(self, request):
        return Response(out.FeatureListOut({"results": features.features_overview()}).data)


class FeatureDetail(Base):
    @read(out.FeatureStatusOut, out.SLUG, s.WPPage, tags=["features"], operation_id="features_status",
          description="A feature's status, as `agileplus status FEATURE --json`, with one page of its work "
                      "packages (totals and the critical path cover all of them).")
    def get(self, request, slug: str):
        query = parse(s.WPPage, request.query_params)
        feature = get_feature(slug)
        status = features.feature_status(feature, after=query["after"], limit=query["limit"])
        status["cost_usd"] = str(costs.feature_cost(feature.pk))
        return Response(out.FeatureStatusOut(status).data)


class WPList(Base):
    @read(out.WPListOut, out.SLUG, s.WPPage, tags=["work packages"], operation_id="wps_list",
          description="The feature's work packages with dependencies, readiness and latest job, a page at a time.")
    def get(self, request, slug: str):
        query = parse(s.WPPage, request.query_params)
        status = features.feature_status(get_feature(slug), after=query["after"], limit=query["limit"])
        last = status["work_packages_page"]["next_after"]
        return Response(out.WPListOut({"results": status["work_packages"], "next_after": last,
                                       "next": next_url(request, after=last) if last else None}).data)


class WPDetail(Base):
    @read(out.WPOut, out.SLUG, out.WP, tags=["work packages"], operation_id="wps_retrieve")
    def get(self, request, slug: str, wp: str):
        feature = get_feature(slug)
        code = get_wp(feature, wp).code
        status = features.feature_status(feature, codes=[code], summary=False)
        return Response(out.WPOut(status["work_packages"][0]).data)


def _moved_or_queued(result) -> Response:
    """200 with the transition; 202 with the review request when a worker runs it (its checks)."""
    if isinstance(result, ReviewRequest):
        return Response(out.ReviewRequestOut(review_requests.request_as_dict(result)).data, status=202)
    return Response(out.MovedOut(result).data)


# A move answers the move (200), or the review request it queued (202: through the merge queue).
MOVED_OR_QUEUED = {200: out.MovedOut, 202: out.ReviewRequestOut}


class WPTransition(Base):
    action_name = "transition"

    @write(MOVED_OR_QUEUED, s.TransitionIn, out.SLUG, out.WP, tags=["work packages"], operation_id="wps_transition",
           description="Move a WP through its lifecycle (`agileplus wp transition`); to done merges it "
                       "(202 when through the merge queue: its checks run on a review worker; watch `url`). "
                       "409: illegal transition, blocked by a dependency, or `expected_state` is stale. "
                       "Agents move only their own WP, never to done.")
    def post(self, request, slug: str, wp: str):
        data = parse(s.TransitionIn, request.data)
        wp_obj = get_wp(get_feature(slug), wp)
        caller = self.caller()
        ensure_owns_wp(caller, wp_obj)
        try:
            result = review_requests.move_or_queue(wp_obj, data["to"], actor=caller.actor,
                                                   expected_source=data.get("expected_state"),
                                                   metadata={"note": data["note"]} if data.get("note") else None)
        except StaleState as exc:
            exc.field = "expected_state"
            raise
        return _moved_or_queued(result)


class WPMove(Base):
    action_name = "move"

    @write(MOVED_OR_QUEUED, s.MoveIn, out.SLUG, out.WP, tags=["work packages"], operation_id="wps_move",
           description="`agileplus move`: to done runs governance on every commit, merges, then transitions "
                       "(humans, CI and admins only). 202: the branch goes through the merge queue, whose "
                       "checks run on a review worker; watch the answered `url`.")
    def post(self, request, slug: str, wp: str):
        data = parse(s.MoveIn, request.data)
        return _moved_or_queued(review_requests.move_or_queue(get_wp(get_feature(slug), wp), data["to"],
                                                              actor=self.actor()))


class Implement(Base):
    action_name = "implement"

    @write(out.ImplementOut, s.ImplementIn, out.SLUG, status=202, tags=["dispatch"], operation_id="implement",
           description="`agileplus implement`: queue agent jobs for the given WPs (all or none), or with "
                       "`all` every ready WP, turning auto-dispatch on. With `fresh` (one WP: `implement "
                       "--fresh`), the WP starts over from the current main on a new branch and its old branch "
                       "is kept on the origin under salvage/ (`fresh_start` says where); 409 while an agent "
                       "works on it or once it is in review or done.")
    def post(self, request, slug: str):
        data = parse(s.ImplementIn, request.data)
        feature = get_feature(slug)
        options = {"harness": data.get("agent"), "actor": self.actor(), "timeout_seconds": data.get("timeout"),
                   "retries": data.get("retries")}
        fresh = {}
        if data["fresh"]:
            started = start_fresh(get_wp(feature, data["wps"][0]), **options)
            queued, fresh = [started.job], {"fresh_start": started.move.as_dict()}
        elif data.get("candidates"):
            wp = get_wp(feature, data["wps"][0])
            plan = plan_candidates(wp, count=data["candidates"], harnesses=data.get("agents"),
                                   quorum=data.get("quorum"))
            rnd = start_candidates(wp, actor=options["actor"], plan=plan, timeout_seconds=options["timeout_seconds"],
                                   retries=options["retries"])
            queued = [c.job for c in rnd.candidates.select_related("job", "job__wp").order_by("index")]
        elif data.get("all"):
            queued = start_feature(feature, **options)
        else:
            queued = dispatch_wps(feature, data["wps"], **options)
        return Response(out.ImplementOut({"feature": feature.slug, "jobs": queued, **fresh}).data, status=202)


# --- review --------------------------------------------------------------------------------------
class WPReview(Base):
    action_name = "review"

    @write(out.ReviewRequestOut, s.ReviewIn, out.SLUG, out.WP, status=202, tags=["review"],
           operation_id="reviews_run",
           description="`agileplus review`: queue the configured checks on main merged with the WP branch for a "
                       "review worker (they run the agent's code: never in this process); it stores the report "
                       "and, with `apply`, moves the WP (approved → done via the merge queue, else → doing). "
                       "Watch the answered `url` until `state` is done or failed.")
    def post(self, request, slug: str, wp: str):
        data = parse(s.ReviewIn, request.data)
        queued = review_requests.queue_review(get_wp(get_feature(slug), wp), actor=self.actor(), apply=data["apply"])
        return Response(out.ReviewRequestOut(review_requests.request_as_dict(queued)).data, status=202)


class ReviewRequestDetail(Base):
    @read(out.ReviewRequestOut, out.REQUEST, tags=["review"], operation_id="review_requests_retrieve",
          description="A review or move asked for by the API or the CLI: queued, running (on which worker), "
                      "done (the report, or the transition) or failed (the error).")
    def get(self, request, request_id: int):
        request_row = review_requests.get_request(request_id)
        return Response(out.ReviewRequestOut(review_requests.request_as_dict(request_row)).data)


class ReviewList(Base):
    @read(out.ReviewListOut, out.SLUG, out.WP, tags=["review"], operation_id="reviews_list",
          description="The WP's latest review reports (newest first, at most 50).")
    def get(self, request, slug: str, wp: str):
        reports = queries.review_reports(get_wp(get_feature(slug), wp))
        return Response(out.ReviewListOut({"results": reports}).data)


class CandidateList(Base):
    @read(out.CandidateRoundOut, out.SLUG, out.WP, tags=["dispatch"], operation_id="candidates",
          description="`agileplus candidates`: the WP's latest round of candidates (best of N), each one's score "
                      "card (the review's checks on main merged with its branch, tests, diff size, cost), rank "
                      "and outcome, and the spend on the winner and on the others. 404 when it ran none.")
    def get(self, request, slug: str, wp: str):
        rnd = latest_round(get_wp(get_feature(slug), wp))
        if rnd is None:
            raise NotFound(f"{wp} has run no candidates", field="wp", fix="POST implement with candidates: N")
        return Response(out.CandidateRoundOut(round_summary(rnd)).data)


class MergeQueueView(Base):
    @read(out.MergeQueueOut, out.SLUG, tags=["review"], operation_id="merge_queue",
          description="`agileplus queue FEATURE`: the merge queue of the feature's repository, its entries "
                      "in order (position, batch, check progress) and the latest merged or ejected ones.")
    def get(self, request, slug: str):
        return Response(out.MergeQueueOut(merge_queues(get_feature(slug))[0]).data)


# --- audit -------------------------------------------------------------------------------------
class AuditList(Base):
    @read(out.AuditPageOut, out.SLUG, s.PageFilter, tags=["audit"],
          operation_id="audit_list", description="The feature's audit chain in order, a page at a time.")
    def get(self, request, slug: str):
        query = parse(s.PageFilter, request.query_params)
        rows = queries.audit_entries(get_feature(slug), after=query["after"], limit=query["limit"])
        page = after_page(request, rows, key=lambda e: e.seq, after=query["after"], limit=query["limit"])
        return Response(out.AuditPageOut({"results": [entry_as_dict(e) for e in rows], **page}).data)


class AuditVerify(Base):
    @read(out.VerificationOut, out.SLUG, tags=["audit"], operation_id="audit_verify",
          description="`agileplus events audit-verify`: recompute every hash and link.")
    def get(self, request, slug: str):
        return Response(out.VerificationOut(verify_chain(get_feature(slug)).as_dict()).data)


# --- identities ----------------------------------------------------------------------------------
class TokenCreate(Base):
    action_name = "tokens"

    @write(out.TokenOut, s.TokenIn, status=201, tags=["auth"], errors=(400, 403), operation_id="tokens_create",
           description="Admins only: create (or rotate) a user's token with a role. The key is shown once.")
    def post(self, request):
        data = parse(s.TokenIn, request.data)
        key = create_api_token(data["username"], data["role"], data.get("agent") or None)
        return Response(out.TokenOut({"username": data["username"], "role": data["role"], "token": key}).data,
                        status=201)


class Login(Base):
    authentication_classes = []  # nothing to authenticate yet: a stale token sent along must not refuse a login
    permission_classes = [AllowAny]
    throttle_scope = "auth"

    @extend_schema(request=s.LoginIn, responses=out.with_errors({200: out.TokenOut}, 400), auth=[], tags=["auth"],
                   operation_id="auth_token",
                   description="A new token for your username and password, replacing your previous one (tokens are "
                                "stored as digests, so none is shown twice); rate-limited per address.")
    def post(self, request):
        data = parse(s.LoginIn, request.data)
        issued = obtain_token(data["username"], data["password"])
        return Response(out.TokenOut(issued).data)


@extend_schema(exclude=True)
class NoRoute(APIView):
    """Anything else under /api/: a 404 in the API's error shape (a GET missing its trailing slash
    is redirected, as Django's APPEND_SLASH would)."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def dispatch(self, request, *args, **kwargs):
        path = request.path
        if not path.endswith("/") and request.method in ("GET", "HEAD") and _routed(path + "/"):
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(path + "/" + (f"?{query}" if query else ""))
        return super().dispatch(request, *args, **kwargs)

    def missing(self, request: Request, *args, **kwargs):
        path = request.path
        if path.endswith("/") and _routed(path.rstrip("/")):
            raise NotFound(f"no endpoint {path}", field="path", fix=f"drop the trailing slash: {path.rstrip('/')}")
        raise NotFound(f"no endpoint {path[:200]}", field="path", fix="see /api/docs/ for the endpoints")

    get = post = put = patch = delete = head = options = missing


def _routed(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return getattr(match.func, "cls", None) is not NoRoute
