"""Agent harnesses, workers and dispatch jobs in the admin.

Jobs are written by the dispatch services (claim, lease, fence); here they are
read-only records with their commits and log lines.
"""

from __future__ import annotations

from django.contrib import admin

from agileplus.dispatch.models import AgentHarness, DispatchJob, JobCommit, JobLogLine, Worker


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class JobCommitInline(_ReadOnlyInline):
    model = JobCommit
    fields = ("sha", "message", "files", "attempt", "committed_at")


class JobLogLineInline(_ReadOnlyInline):
    model = JobLogLine
    fields = ("seq", "timestamp", "stream", "line")
    max_num = 200


@admin.register(AgentHarness)
class AgentHarnessAdmin(admin.ModelAdmin):
    list_display = ("name", "adapter", "model", "cli_version", "enabled")
    list_filter = ("enabled", "adapter")
    search_fields = ("name", "adapter", "model")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("hostname", "concurrency", "active_sessions", "last_heartbeat", "stopped_at")
    search_fields = ("hostname",)
    readonly_fields = ("started_at", "last_heartbeat", "stopped_at")


@admin.register(DispatchJob)
class DispatchJobAdmin(admin.ModelAdmin):
    list_display = ("id", "feature", "wp", "harness", "state", "attempt", "worker", "queued_at", "finished_at")
    list_filter = ("state", "harness", "feature")
    search_fields = ("id", "session_id", "wp__code", "feature__slug", "worker")
    list_select_related = ("feature", "wp")
    inlines = [JobCommitInline, JobLogLineInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobCommit)
class JobCommitAdmin(admin.ModelAdmin):
    list_display = ("sha", "job", "message", "reported_at")
    search_fields = ("sha", "message", "job__id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
