"""Each job as OpenTelemetry spans (GenAI semantic conventions) sent over OTLP/HTTP to a receiver
on loopback, decoded with opentelemetry-proto."""

from __future__ import annotations

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agileplus.dispatch.models import ACTIVITY_STREAM, DispatchJob, JobLogLine, ModelCall
from agileplus.provenance import otel
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo
from tests.support.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True)]


class Receiver:
    """An OTLP/HTTP trace receiver: every span it was sent, by name, with its attributes."""

    def __init__(self) -> None:
        self.spans: dict[str, dict] = {}
        self.parents: dict[str, bytes] = {}
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.take(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, path: str, body: bytes) -> None:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                    self.spans[span.name] = {**attributes, "_span_id": span.span_id,
                                             "_parent": span.parent_span_id, "_trace": span.trace_id}
        self.got.set()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_a_job_is_exported_as_an_invoke_agent_span_with_its_job_and_wp(tmp_path, settings, receiver):
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    import_target(repo)

    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output

    assert receiver.got.wait(30), "no spans reached the receiver"
    job = DispatchJob.objects.get(wp__code="WP01")
    span = receiver.spans["invoke_agent command"]
    assert span["gen_ai.operation.name"] == "invoke_agent" and span["gen_ai.agent.name"] == "command"
    assert (span["agileplus.job.id"], span["agileplus.wp"], span["agileplus.job.attempt"]) == (job.id, "WP01", 1)


def test_model_calls_and_tool_uses_are_children_with_token_usage(tmp_path, settings, receiver):
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    import_target(repo)
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output
    job = DispatchJob.objects.get(wp__code="WP01")
    start = job.started_at or timezone.now()
    ModelCall.objects.create(job=job, attempt=job.attempt, feature=job.feature, wp=job.wp, harness="command",
                             provider="anthropic", model="claude-sonnet-4", method="POST", path="/v1/messages",
                             status=200, outcome="ok", input_tokens=1200, output_tokens=340, duration_ms=850,
                             started_at=start)
    last = JobLogLine.objects.filter(job=job).order_by("-seq").first()
    JobLogLine.objects.create(job=job, attempt=job.attempt, seq=last.seq + 1, stream=ACTIVITY_STREAM,
                              timestamp=start + dt.timedelta(seconds=1), line="Edited src/app.py")

    sent = otel.export_job(job, receiver.endpoint)

    assert sent == 3 and receiver.got.wait(30)
    root, chat, tool = (receiver.spans[n] for n in ("invoke_agent command", "chat claude-sonnet-4",
                                                    "execute_tool edited"))
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (1200, 340)
    assert chat["gen_ai.provider.name"] == "anthropic" and chat["gen_ai.operation.name"] == "chat"
    assert tool["gen_ai.tool.name"] == "edited" and tool["agileplus.activity"] == "Edited src/app.py"
    assert chat["_parent"] == tool["_parent"] == root["_span_id"] and chat["_trace"] == root["_trace"]
