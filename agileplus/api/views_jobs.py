"""The REST API's views of the farm's work: jobs (list, detail, log, cancel), costs, the event outbox,
agents and workers. Thin like the rest of ``views``: parse, check the role, call a selector or a
service, render with the response's serializer."""

from __future__ import annotations

from rest_framework.response import Response

from agileplus.api import output as out
from agileplus.api import queries
from agileplus.api import serializers as s
from agileplus.api.pagination import after_page, job_page
from agileplus.api.roles import ensure_owns_job
from agileplus.api.views import Base, parse, read, write
from agileplus.dispatch import cost_reports, costs, job_log
from agileplus.dispatch import selectors as jobs
from agileplus.dispatch import services as dispatch
from agileplus.features import selectors as features
from agileplus.features.services import get_feature


class CostList(Base):
    @read(out.CostReportOut, out.SLUG, s.CostFilter, tags=["features"],
          operation_id="costs_list")
    def get(self, request, slug: str):
        query = parse(s.CostFilter, request.query_params)
        feature = get_feature(slug)
        rows = cost_reports.ledger(feature_id=feature.pk, by=query["by"])
        total = costs.ledger_total(rows)
        return Response(out.CostReportOut({"results": [r.as_dict() for r in rows], "total_cost_usd": None
                                           if total is None else str(total),
                                           "outcomes": cost_reports.outcomes(feature_id=feature.pk)}).data)


class JobList(Base):
    @read(out.JobPageOut, s.JobFilter, tags=["dispatch"], operation_id="jobs_list",
          description="Dispatch jobs, newest first.")
    def get(self, request):
        query = parse(s.JobFilter, request.query_params)
        feature = get_feature(query["feature"]) if query.get("feature") else None
        rows, links = job_page(request, queries.jobs(feature=feature, status=query.get("status"),
                                                     harness=query.get("harness")),
                               cursor=query.get("cursor"), limit=query["limit"])
        return Response(out.JobPageOut({"results": rows, **links}).data)


class JobDetail(Base):
    @read(out.JobOut, out.JOB, tags=["dispatch"], operation_id="jobs_retrieve")
    def get(self, request, job_id: str):
        return Response(out.JobOut(jobs.job_summary(jobs.get_job(job_id))).data)


class JobLog(Base):
    action_name = "report"

    @read(out.LogPageOut, out.JOB, s.LogFilter, tags=["dispatch"],
          operation_id="jobs_log", description="The job's log lines after `after`, in order.")
    def get(self, request, job_id: str):
        query = parse(s.LogFilter, request.query_params)
        rows = jobs.log_lines(jobs.get_job(job_id), after_seq=query["after"], limit=query["limit"])
        page = after_page(request, rows, key=lambda r: r.seq, after=query["after"], limit=query["limit"], stream=True)
        return Response(out.LogPageOut({"results": rows, **page}).data)

    @write(out.ReportOut, s.LogIn, out.JOB, status=201, tags=["dispatch"], errors=(400, 403),
           operation_id="jobs_report", description="Append report lines to the job's log (agents: own jobs only).")
    def post(self, request, job_id: str):
        data = parse(s.LogIn, request.data)
        job = jobs.get_job(job_id)
        caller = self.caller()
        ensure_owns_job(caller, job)
        added = job_log.append_report(job, data["lines"], actor=caller.actor)
        return Response(out.ReportOut({"job": job.id, "added": added}).data, status=201)


class JobCancel(Base):
    action_name = "cancel"

    @write(out.CancelOut, None, out.JOB, tags=["dispatch"], operation_id="jobs_cancel",
           description="Cancel a queued job at once; ask a running one's worker to stop it.")
    def post(self, request, job_id: str):
        job = jobs.get_job(job_id)
        caller = self.caller()
        ensure_owns_job(caller, job)
        job = dispatch.cancel_job(job.id, actor=caller.actor)
        return Response(out.CancelOut(job).data)


class EventList(Base):
    @read(out.EventPageOut, s.EventFilter, tags=["events"], operation_id="events_list",
          description="The event outbox after id `after`, in id order; poll with `next_after` to resume "
                      "(live: /api/events/stream).")
    def get(self, request):
        query = parse(s.EventFilter, request.query_params)
        feature = get_feature(query["feature"]) if query.get("feature") else None
        rows = features.list_events(feature=feature, pattern=query.get("subject"), after=query["after"],
                                    limit=query["limit"])
        page = after_page(request, rows, key=lambda e: e.pk, after=query["after"], limit=query["limit"], stream=True)
        return Response(out.EventPageOut({"results": [e.as_message() for e in rows], **page}).data)


class AgentList(Base):
    @read(out.AgentListOut, tags=["dispatch"], operation_id="agents_list")
    def get(self, request):
        return Response(out.AgentListOut({"results": jobs.agents_overview()}).data)


class WorkerList(Base):
    @read(out.WorkerListOut, tags=["dispatch"], operation_id="workers_list")
    def get(self, request):
        return Response(out.WorkerListOut({"results": queries.workers()}).data)
