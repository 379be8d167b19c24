"""Running an agent process: its own session and process group, output streamed line
by line, and a layered stop (warning, SIGTERM to the group, grace, SIGKILL to the group).

A hard time limit on the worker would orphan the agent's children; owning the group
here means a timeout, cancel or budget stop always ends every process the agent began.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harnesses.base import HarnessError

if TYPE_CHECKING:
    from harnesses.sandbox import Sandbox

MAX_LINE_BYTES = 64 * 1024
# Lines read but not yet handled. An agent printing faster than its lines are stored has the
# surplus dropped (counted, and reported by a marker line) instead of filling the worker's memory.
MAX_QUEUED_LINES = 10_000
# After the agent's group is gone: how long its output readers may take to reach the streams' ends.
READERS_SETTLE_SECONDS = 1.0
DROPPED_MARKER = "[agileplus: {n} line(s) of {stream} dropped: the agent printed faster than they could be stored]"
PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # Die with the worker: if the worker is SIGKILLed, the kernel sends SIGKILL here.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class StopReason:
    kind: str  # timeout | idle | cancelled | budget | turns
    detail: str = ""


@dataclass
class ProcessResult:
    exit_code: int
    stopped: StopReason | None = None
    killed: bool = False
    duration: float = 0.0
    lines: int = 0
    stop_log: list[str] = field(default_factory=list)


def group_alive(pgid: int) -> bool:
    return _reached(os.killpg, pgid)


def pid_alive(pid: int) -> bool:
    return _reached(os.kill, pid)


def _reached(send: Callable[[int, int], None], target: int) -> bool:
    """Whether signal 0 sent to ``target`` (a process, or a group) finds it: ours or another user's."""
    try:
        send(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents before children (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue_ = [], [pid]
    while queue_:
        current = queue_.pop(0)
        found.append(current)
        queue_ += sorted(children.get(current, []))
    return found


def _reader(stream, name: str, out: queue.Queue) -> None:
    """Put each line of ``stream`` on ``out`` without ever blocking the agent on a full queue:
    a line that does not fit is counted, and the count goes in as one marker line when there is
    room again (or at the end). The end of the stream (``None``) is always delivered."""
    dropped = 0
    for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
        try:
            if dropped:
                out.put_nowait((name, DROPPED_MARKER.format(n=dropped, stream=name)))
                dropped = 0
            # Bytes that are not UTF-8 are shown as `\xff`, not silently turned into U+FFFD.
            out.put_nowait((name, raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")))
        except queue.Full:
            dropped += 1
    if dropped:
        out.put((name, DROPPED_MARKER.format(n=dropped, stream=name)))
    out.put((name, None))


class AgentProcess:
    """One agent run. ``on_line(stream, text)`` is called for each line, ``tick()`` about
    every ``tick_seconds``; either may return a StopReason to stop the run."""

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        stdin_text: str | None = None,
        timeout_seconds: float,
        grace_seconds: float = 30.0,
        idle_seconds: float | None = None,
        tick_seconds: float = 0.5,
        warning_seconds: float = 0.0,
        sandbox: Sandbox | None = None,
    ):
        self.sandbox = sandbox
        self.argv = sandbox.wrap(argv) if sandbox else argv
        self.cwd = cwd
        self.env = sandbox.environment(env) if sandbox else env
        self.stdin_text = stdin_text
        self.timeout_seconds = timeout_seconds
        self.grace_seconds = grace_seconds
        self.idle_seconds = idle_seconds
        self.tick_seconds = tick_seconds
        # The warning step: ``on_warning(seconds_left)`` once, this long before the timeout.
        self.warning_seconds = warning_seconds if 0 < warning_seconds < timeout_seconds else 0.0
        self.proc: subprocess.Popen | None = None

    def _child_setup(self) -> None:
        _child_setup()
        if self.sandbox is not None:
            self.sandbox.preexec()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> int:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE if self.stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=self._child_setup,
            pass_fds=self.sandbox.pass_fds() if self.sandbox is not None else (),
        )
        if self.sandbox is not None:
            try:
                self.sandbox.started(self.proc.pid)  # bwrap waits for it (network: model)
            except HarnessError as exc:
                kill_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                said = self.proc.stderr.read().decode(errors="replace").strip()[-500:]  # bwrap's own reason
                raise HarnessError(f"{exc}{': ' + said if said else ''}") from None
        if self.stdin_text is not None:
            threading.Thread(target=self._feed_stdin, daemon=True).start()
        return self.proc.pid

    def _feed_stdin(self) -> None:
        try:
            self.proc.stdin.write(self.stdin_text.encode("utf-8"))
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def run(
        self,
        on_line: Callable[[str, str], StopReason | None],
        tick: Callable[[], StopReason | None] | None = None,
        on_stop: Callable[[str], None] | None = None,
        on_warning: Callable[[float], None] | None = None,
    ) -> ProcessResult:
        if self.proc is None:
            self.start()
        lines: queue.Queue = queue.Queue(maxsize=MAX_QUEUED_LINES)
        for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=_reader, args=(stream, name, lines), daemon=True).start()
        started = time.monotonic()
        last_output = started
        open_streams = 2
        next_tick = started + self.tick_seconds
        stopped: StopReason | None = None
        count = 0
        warn_at = started + self.timeout_seconds - self.warning_seconds if self.warning_seconds else None
        while open_streams:
            now = time.monotonic()
            if warn_at is not None and now >= warn_at:
                warn_at = None
                if on_warning:
                    on_warning(max(0.0, self.timeout_seconds - (now - started)))
            if stopped is None:
                if now - started > self.timeout_seconds:
                    stopped = StopReason("timeout", f"no result after {self.timeout_seconds:g}s")
                elif self.idle_seconds and now - last_output > self.idle_seconds:
                    stopped = StopReason("idle", f"no output for {self.idle_seconds:g}s")
                elif tick and now >= next_tick:
                    next_tick = now + self.tick_seconds
                    stopped = tick()
                if stopped is not None:
                    break
            try:
                name, text = lines.get(timeout=min(self.tick_seconds, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and lines.empty():
                    # The leader exited; daemons it left may hold the pipes open.
                    time.sleep(0.05)
                    if lines.empty():
                        break
                continue
            if text is None:
                open_streams -= 1
                continue
            count += 1
            last_output = time.monotonic()
            reason = on_line(name, text)
            if reason is not None and stopped is None:
                stopped = reason
                break
        result = ProcessResult(exit_code=0, stopped=stopped, lines=count)
        self._end(result, lines, open_streams, on_line, on_stop)
        result.duration = time.monotonic() - started
        return result

    def _end(self, result: ProcessResult, lines: queue.Queue, open_streams: int,
             on_line: Callable[[str, str], StopReason | None], on_stop: Callable[[str], None] | None) -> None:
        """Stop the agent (or wait for its exit), end its whole group, and pass on the last lines."""
        stopped = result.stopped
        stop_began = time.monotonic()
        if stopped is not None:
            self._stop(result, on_stop)
        else:
            result.exit_code = self.proc.wait()
        # Reap whatever the agent left behind in its group (forked daemons, helpers).
        if group_alive(self.proc.pid):
            kill_group(self.proc.pid, signal.SIGKILL)
        # What is still queued (at most MAX_QUEUED_LINES, plus what a reader blocked on the end
        # marker adds) is handled, but a stopped run never past the grace period it began with
        # (less what the stop itself took; at least a moment): the timeout stays a timeout.
        if stopped is not None:
            drain_until = max(stop_began + self.grace_seconds, time.monotonic() + 0.5)
        else:
            drain_until = time.monotonic() + self.grace_seconds
        # The agent's last words (its trap's "cleaning up") may still be in the pipe when it exits:
        # the readers get a moment to reach each stream's end, but not a daemon outside the group
        # that holds a pipe open (so a busy machine loses no line, and a leaked daemon costs 1 s).
        settle_until = min(drain_until, time.monotonic() + READERS_SETTLE_SECONDS)
        left = 0
        while open_streams or not lines.empty():
            try:
                name, text = lines.get(timeout=max(0.0, settle_until - time.monotonic()))
            except queue.Empty:
                break
            if text is None:
                open_streams -= 1
                continue
            if time.monotonic() > drain_until:
                left += 1 + lines.qsize()  # a daemon outside the group may still be filling it
                break
            on_line(name, text)
            result.lines += 1
        if left:
            on_line("stderr", DROPPED_MARKER.format(n=left, stream="output"))

    def _stop(self, result: ProcessResult, on_stop: Callable[[str], None] | None) -> None:
        pgid = self.proc.pid
        say = on_stop or (lambda _text: None)
        say(f"Stopping agent: {result.stopped.kind} ({result.stopped.detail}); SIGTERM, {self.grace_seconds:g}s grace")
        ignoring = 0
        if self.sandbox is not None and self.sandbox.mode != "off":
            # bwrap dies of SIGTERM and takes the PID namespace with it at once: the agent's own
            # processes (a new session inside) get the SIGTERM instead, and the grace to use it.
            for pid in descendants(pgid):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap":
                        ignoring += _ignores_sigterm(pid)
                        os.kill(pid, signal.SIGTERM)
        else:
            kill_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not group_alive(pgid):
                break
            time.sleep(0.05)
        if self.proc.poll() is None or group_alive(pgid):
            say("Agent still running after grace period: SIGKILL to its process group")
            kill_group(pgid, signal.SIGKILL)
            result.killed = True
        elif ignoring:
            # The sandbox ends with its first process: agent processes that ignored the SIGTERM
            # (and would have outlived the grace) went down with the namespace, i.e. by SIGKILL.
            say("Agent processes ignored SIGTERM: SIGKILLed with the sandbox")
            result.killed = True
        code = self.proc.wait()
        result.exit_code = -1 if result.stopped.kind == "timeout" else code


def _ignores_sigterm(pid: int) -> bool:
    """Whether ``pid`` ignores SIGTERM (its SigIgn mask in /proc): only SIGKILL ends it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


JOB_MARK_ENV = "AGILEPLUS_JOB_MARK"


def all_marked() -> dict[int, str]:
    """Every process carrying an ``AGILEPLUS_JOB_MARK`` in its environment: pid → mark.

    A daemon that called setsid() has left the agent's process group, but it keeps
    the environment it inherited: this finds it anyway (Linux /proc).
    """
    prefix = f"{JOB_MARK_ENV}=".encode()
    found = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(prefix):
                found[int(entry.name)] = item[len(prefix):].decode(errors="replace")
                break
    return found


def marked_pids(mark: str) -> list[int]:
    """Processes carrying ``AGILEPLUS_JOB_MARK=<mark>``."""
    return [pid for pid, found in all_marked().items() if found == mark]


def reap_marked(mark: str) -> list[int]:
    """SIGKILL every process left with this job's mark; returns their pids."""
    pids = marked_pids(mark)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids
