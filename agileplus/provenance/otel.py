"""A finished job as OpenTelemetry spans, following the GenAI semantic conventions, exported over
OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended, as the SDK does for that
variable). Imported only when the endpoint is set (the SDK costs 0.4 s to import).

One trace per job attempt: an ``invoke_agent {harness}`` span over the run (session id as
``gen_ai.conversation.id``, the job, attempt, feature and WP as ``agileplus.*`` attributes, the
attempt's token usage), a ``chat {model}`` child per model call the gateway metered (its own
start, duration and token usage) and an ``execute_tool {tool}`` child per tool use in the job's
activity log (from its line to the next one: the log has no end time per tool)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agileplus.dispatch.models import ACTIVITY_STREAM, DispatchJob, JobLogLine, ModelCall


def _ns(moment: dt.datetime | None) -> int | None:
    return int(moment.timestamp() * 1e9) if moment else None


def job_attributes(job: DispatchJob) -> dict:
    return {"agileplus.job.id": job.id, "agileplus.job.attempt": job.attempt, "agileplus.feature": job.feature.slug,
            "agileplus.wp": job.wp.code, "agileplus.job.state": job.state}


def export_job(job: DispatchJob, endpoint: str | None = None) -> int:
    """Export the spans of ``job``'s current attempt; returns how many were sent."""
    endpoint = (endpoint or settings.OTEL_EXPORTER_OTLP_ENDPOINT).rstrip("/")
    provider = TracerProvider(resource=Resource.create({"service.name": "agileplus-worker"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=10)))
    tracer = provider.get_tracer("agileplus.provenance")
    calls = list(ModelCall.objects.filter(job=job, attempt=job.attempt).order_by("started_at", "id"))
    tools = list(JobLogLine.objects.filter(job=job, attempt=job.attempt, stream=ACTIVITY_STREAM).order_by("seq"))
    usage = job.usage or {}
    model = next((c.model for c in reversed(calls) if c.model), "") or (job.result or {}).get("model") or ""
    root = tracer.start_span(f"invoke_agent {job.harness}", kind=trace.SpanKind.CLIENT,
                             start_time=_ns(job.started_at or job.queued_at), attributes={
                                 "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": job.harness,
                                 "gen_ai.conversation.id": job.session_id, "gen_ai.request.model": model,
                                 "gen_ai.usage.input_tokens": int(usage.get("input_tokens") or 0),
                                 "gen_ai.usage.output_tokens": int(usage.get("output_tokens") or 0),
                                 **job_attributes(job)})
    parent = trace.set_span_in_context(root)
    for call in calls:
        span = tracer.start_span(f"chat {call.model}", context=parent, kind=trace.SpanKind.CLIENT,
                                 start_time=_ns(call.started_at), attributes={
                                     "gen_ai.operation.name": "chat", "gen_ai.provider.name": call.provider,
                                     "gen_ai.request.model": call.model, "gen_ai.response.model": call.model,
                                     "gen_ai.usage.input_tokens": call.input_tokens,
                                     "gen_ai.usage.output_tokens": call.output_tokens,
                                     **({"error.type": call.outcome} if call.outcome != "ok" else {}),
                                     **job_attributes(job)})
        span.end(end_time=_ns(call.started_at + dt.timedelta(milliseconds=call.duration_ms)))
    ends = [line.timestamp for line in tools[1:]] + ([job.finished_at or tools[-1].timestamp] if tools else [])
    for line, end in zip(tools, ends, strict=True):
        tool = line.line.split(" ", 1)[0].lower() or "tool"
        span = tracer.start_span(f"execute_tool {tool}", context=parent, start_time=_ns(line.timestamp), attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "gen_ai.tool.call.id": str(line.seq),
            "agileplus.activity": line.line[:300], **job_attributes(job)})
        span.end(end_time=_ns(max(end, line.timestamp)) if end else None)
    root.end(end_time=_ns(job.finished_at))
    provider.shutdown()  # flushes the batch; the exporter gives up after its timeout
    return 1 + len(calls) + len(tools)
