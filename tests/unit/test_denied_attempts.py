"""What the agent's output says it could not reach, read as the job's denied paths."""

from pathlib import Path

from agileplus.dispatch.sandboxing import denied_attempts, escape_attempt

HIDDEN = [Path("/srv/agileplus/data"), Path("/home/worker")]


def test_a_missing_file_under_a_hidden_folder_is_a_denied_path():
    line = "cat: /srv/agileplus/data/agileplus.sqlite3: No such file or directory"
    assert denied_attempts(line, HIDDEN) == ["/srv/agileplus/data/agileplus.sqlite3"]


def test_a_write_on_a_read_only_mount_names_its_path():
    line = "sh: 1: cannot create /usr/lib/planted.so: Read-only file system"
    assert denied_attempts(line, HIDDEN) == ["/usr/lib/planted.so"]


def test_a_missing_file_of_the_agents_own_tree_is_not_a_denied_path():
    assert denied_attempts("cat: notes/todo.txt: No such file or directory", HIDDEN) == []


def test_a_hidden_folder_named_without_an_error_is_not_a_denied_path():
    assert denied_attempts("reading /srv/agileplus/data/readme", HIDDEN) == []


def test_a_refused_remount_is_an_escape_attempt():
    assert escape_attempt("mount: /usr: must be superuser to use mount.")


def test_a_refused_open_by_handle_at_is_an_escape_attempt():
    assert escape_attempt("open_by_handle_at: [Errno 1] Operation not permitted")


def test_a_mount_named_without_a_refusal_is_not_an_escape_attempt():
    assert not escape_attempt("Mounting the router at /api (mount.ts)")


def test_a_refusal_of_an_ordinary_operation_is_not_an_escape_attempt():
    assert not escape_attempt("cp: cannot open 'secret.txt' for reading: Permission denied")
