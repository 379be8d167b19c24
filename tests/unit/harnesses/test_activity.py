"""The agent's tool uses read as the example's activity lines (Step 6 of the example), from each
real CLI's recorded stream: paths relative to the worktree, git housekeeping left to `--raw`."""

from __future__ import annotations

from pathlib import Path

import pytest

from harnesses.activity import activity_lines, describe
from harnesses.base import AgentEvent
from harnesses.registry import get_adapter
from tests.support.streams import recorded

RECORDED_WORKTREE = {"claude-code": "/tmp/record-claude-code-vuwu0qtu/worktrees/check-WP01",
                     "gemini": "/tmp/record-gemini-4s_w11y5/worktrees/check-WP01",
                     "opencode": "/tmp/record-opencode-qk3nfqty/worktrees/check-WP01"}


def readable(harness: str, workdir: Path | None) -> list[str]:
    adapter = get_adapter(harness)
    lines = []
    for line in recorded(harness).lines:
        for event in adapter.parse_line(line):
            lines += activity_lines(event, workdir) or []
    return lines


@pytest.mark.parametrize("harness", sorted(RECORDED_WORKTREE))
def test_a_recorded_write_and_commit_read_as_one_created_line(harness):
    assert readable(harness, Path(RECORDED_WORKTREE[harness])) == ["Created agents-check.txt (1 line)"]


def test_codexs_shell_wrapper_is_left_out_of_its_commands():
    lines = readable("codex", None)

    assert len(lines) == 1 and lines[0].startswith('Running: mkdir -p "$(dirname agents-check.txt)"')


def test_reading_the_spec_is_the_examples_line(tmp_path):
    spec = tmp_path / "kitty-specs" / "003-auth-system" / "spec.md"
    spec.parent.mkdir(parents=True)
    spec.write_text("x" * 2150)

    assert describe("Read", {"file_path": str(spec)}, tmp_path) == "Reading specification: spec.md (2.1 KB)"


def test_a_new_file_is_created_with_its_line_count(tmp_path):
    content = "fn login() {}\n" * 245

    line = describe("Write", {"file_path": str(tmp_path / "src/handlers/login.rs"), "content": content}, tmp_path)

    assert line == "Created src/handlers/login.rs (245 lines)"


def test_an_existing_file_written_whole_is_rewritten(tmp_path):
    (tmp_path / "README.md").write_text("old\n")

    assert describe("write_file", {"file_path": "README.md", "content": "new\n"}, tmp_path) == \
        "Rewrote README.md (1 line)"


def test_a_test_command_runs_locally():
    assert describe("Bash", {"command": "cargo test"}, None) == "Running cargo test locally..."


def test_git_housekeeping_is_not_an_activity():
    assert describe("Bash", {"command": "git add -A && git commit -m 'feat(WP02): x'"}, None) is None


def test_a_path_outside_the_worktree_stays_whole(tmp_path):
    assert describe("Edit", {"file_path": "/etc/hosts"}, tmp_path) == "Edited /etc/hosts"


def test_codexs_file_changes_name_each_file(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/new.rs").write_text("a\nb\n")
    event = AgentEvent(kind="tool_result", tool="file_change", tool_input={"changes": [
        {"kind": "add", "path": str(tmp_path / "src/new.rs")}, {"kind": "update", "path": str(tmp_path / "lib.rs")}]})

    assert activity_lines(event, tmp_path) == ["Created src/new.rs (2 lines)", "Edited lib.rs"]


def test_a_failed_tool_says_so_and_an_ordinary_result_says_nothing():
    failed = AgentEvent(kind="tool_result", text="error: permission denied\nmore", is_error=True)

    assert activity_lines(failed, None) == ["Failed: permission denied …"]
    assert activity_lines(AgentEvent(kind="tool_result", text="3 files"), None) == []


def test_a_message_is_not_a_tool_event():
    assert activity_lines(AgentEvent(kind="message", text="Working on rate limiting middleware..."), None) is None


def test_a_json_event_cut_short_is_said_to_be_unreadable_not_shown_as_the_agents_words():
    whole = recorded("claude-code").lines[-1]

    (event,) = get_adapter("claude-code").parse_line(whole[: len(whole) // 2])

    assert event.text == whole[: len(whole) // 2]  # kept verbatim for `logs --raw`
    assert activity_lines(event, None) == [
        f"Unreadable line in the CLI's stream ({len(whole) // 2} characters that are not a whole JSON event; "
        "`logs --raw` shows it)"]


def test_a_plain_text_line_of_a_json_cli_is_shown_as_it_is():
    (event,) = get_adapter("codex").parse_line("Reading prompt from stdin...")

    assert activity_lines(event, None) is None


def test_a_new_file_already_on_disk_when_its_line_is_read_is_still_created(tmp_path):
    # the CLI wrote it before the worker read the tool use from its stream
    (tmp_path / "wp01").mkdir()
    (tmp_path / "wp01" / "file_1.txt").write_text("one\n")

    line = describe("Write", {"file_path": "wp01/file_1.txt", "content": "one\n"}, tmp_path, {"README.md"})

    assert line == "Created wp01/file_1.txt (1 line)"


def test_a_branch_file_or_one_written_earlier_in_the_run_is_rewritten(tmp_path):
    files = {"README.md"}

    first = describe("Write", {"file_path": "notes.txt", "content": "a\n"}, tmp_path, files)
    again = describe("Write", {"file_path": "notes.txt", "content": "b\n"}, tmp_path, files)
    readme = describe("Write", {"file_path": "README.md", "content": "c\n"}, tmp_path, files)

    assert (first, again, readme) == ("Created notes.txt (1 line)", "Rewrote notes.txt (1 line)",
                                      "Rewrote README.md (1 line)")
