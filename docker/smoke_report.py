"""docker/smoke's look into the farm, run inside the web container: ``python - CMD [ARG] < smoke_report.py``.

running           waits (up to 240 s) for a first attempt that is running and has pushed a commit, and prints
                  one ``JOB_ID WORKER`` line for it: a worker killed then leaves a branch its taker continues
ran WP            the worker that ran the WP's succeeded attempt
report JOB_ID     the feature's state, each WP's and which worker ran each attempt; checks the attempts ran on at
                  least two workers, and that JOB_ID (the killed worker's) was taken over exactly once and succeeded;
                  prints the attempts handed on by workers the rolling restart stopped
nats              every event in the outbox is on the JetStream stream exactly once (waits for the relay)

Exit 0 when every check holds, 1 with one line per failed check.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import django

django.setup()

from django.conf import settings  # noqa: E402

from agileplus.audit.models import AuditEntry  # noqa: E402
from agileplus.dispatch.models import DispatchJob, JobLogLine, JobState  # noqa: E402
from agileplus.events.models import Event  # noqa: E402
from agileplus.features.lifecycles import WPState  # noqa: E402
from agileplus.features.models import Feature, WorkPackage  # noqa: E402


def running(timeout: float = 240.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = (DispatchJob.objects.filter(state=JobState.RUNNING, attempt=1, commits__isnull=False)
               .exclude(worker="").order_by("started_at").first())
        if job:
            print(job.pk, job.worker)
            return 0
        time.sleep(0.2)
    print("FAILED: no first attempt was running with a commit")
    return 1


def ran(wp_code: str) -> int:
    job = DispatchJob.objects.filter(wp__code=wp_code, state=JobState.SUCCEEDED).first()
    print(job.worker if job else "-")
    return 0 if job else 1


def _takeovers(job_id: str) -> list[AuditEntry]:
    return [entry for entry in AuditEntry.objects.filter(transition__endswith=":attempt_lost")
            if entry.metadata.get("job_id") == job_id]


def report(killed_job: str) -> int:
    problems = []
    for wp in WorkPackage.objects.select_related("feature").order_by("feature__slug", "code"):
        runs = [f"attempt {job.attempt} {job.state} on {job.worker or '-'}"
                for job in wp.jobs.order_by("queued_at")]
        print(f"  {wp.feature.slug} {wp.code:5} {wp.state:10} " + "; ".join(runs))
    for feature in Feature.objects.order_by("slug"):
        print(f"  feature {feature.slug}: {feature.state}")
    undone = list(WorkPackage.objects.exclude(state=WPState.DONE).values_list("code", flat=True))
    if undone:
        problems.append(f"WPs not done: {', '.join(undone)}")
    succeeded = set(DispatchJob.objects.filter(state=JobState.SUCCEEDED).values_list("worker", flat=True))
    lost = _takeovers(killed_job)
    # the attempts that ran: those that succeeded and those lost with their worker
    workers = succeeded | {entry.metadata.get("worker", "") for entry in lost} - {""}
    print(f"  succeeded jobs ran on {len(succeeded)} worker container(s): {', '.join(sorted(succeeded))}; "
          f"attempts on {len(workers)}")
    if len(workers) < 2:
        problems.append("the jobs did not spread over two worker containers")
    job = DispatchJob.objects.get(pk=killed_job)
    print(f"  killed job {killed_job} ({job.wp.code}): {len(lost)} lost attempt(s) "
          f"({', '.join(e.metadata.get('reason', '?') + ' on ' + e.metadata.get('worker', '?') for e in lost)}), "
          f"then attempt {job.attempt} {job.state} on {job.worker}")
    # A worker stopped by the rolling restart with a job running hands it on (not a lost attempt).
    handed = JobLogLine.objects.filter(line__startswith="Handed on:").select_related("job__wp")
    print(f"  handed on at a worker's SIGTERM: {len(handed)} attempt(s)"
          + "".join(f"; {line.job.wp.code} attempt {line.attempt}" for line in handed))
    if len(lost) != 1:
        problems.append(f"job {killed_job} was taken over {len(lost)} times, not once")
    if job.state != JobState.SUCCEEDED:
        problems.append(f"job {killed_job} ended {job.state}, not succeeded")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


async def _stream_msg_ids() -> list[str]:
    import nats

    client = await nats.connect(settings.NATS_URL)
    try:
        js = client.jetstream()
        info = await js.stream_info(settings.NATS_STREAM)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(settings.NATS_STREAM, seq)
            ids.append(json.loads(message.data)["msg_id"])
        return ids
    finally:
        await client.close()


def nats_once(timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while Event.objects.filter(published_at__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    outbox = {str(msg_id) for msg_id in Event.objects.values_list("msg_id", flat=True)}
    on_stream = asyncio.run(_stream_msg_ids())
    duplicates = len(on_stream) - len(set(on_stream))
    missing = outbox - set(on_stream)
    print(f"  outbox {len(outbox)} events, stream {settings.NATS_STREAM} {len(on_stream)} messages, "
          f"{duplicates} duplicate(s), {len(missing)} missing")
    if duplicates or missing or set(on_stream) - outbox:
        print("FAILED: the events are not on NATS exactly once")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["running"]:
        return running()
    if argv[:1] == ["ran"] and len(argv) == 2:
        return ran(argv[1])
    if argv[:1] == ["report"] and len(argv) == 2:
        return report(argv[1])
    if argv[:1] == ["nats"]:
        return nats_once()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
