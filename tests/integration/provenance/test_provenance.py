"""Provenance that travels with the code, on a real target repository merged by the real merge
queue: Agent Trace notes per agent commit, a signed attestation per main move, and verification
that fails, with the reason and a non-zero exit, on every kind of tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agileplus.provenance.attestation import ensure_key, public_key_text
from agileplus.provenance.models import Attestation
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tools" / "verify-provenance.py"
TRACES, ATTESTATIONS = "refs/notes/agent-trace", "refs/notes/agileplus-attestation"


@pytest.fixture
def farm_key(tmp_path, settings):
    settings.PROVENANCE_KEY_FILE = tmp_path / "keys" / "farm.key"
    ensure_key()
    return settings.PROVENANCE_KEY_FILE


def merged_wp(tmp_path, behaviour: str = "commit:2"):
    """WP01 dispatched (the stand-in agent commits), reviewed and moved to done by a person."""
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=behaviour)
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output
    assert run_cli("move 003 WP01 --to done --actor human:alice").exit_code == 0
    return repo, feature


def verify(repo, *args: str):
    return run_cli(["provenance", "verify", *args, "--repo", str(repo.path), "--no-fetch"])


def note(repo, ref: str, commit: str) -> str:
    return repo.git("notes", "--ref", ref, "show", commit)


def agent_commits(repo) -> list[str]:
    return repo.git("rev-list", "--no-merges", "main^1..main").split()


def test_each_agent_commit_carries_an_agent_trace_note_naming_its_job_and_lines(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)

    commits = agent_commits(repo)
    assert len(commits) == 2
    for sha in commits:
        record = json.loads(note(repo, TRACES, sha))
        assert record["version"] == "0.1.0" and record["vcs"] == {"type": "git", "revision": sha}
        farm = record["metadata"]["dev.agileplus"]
        assert (farm["wp"], farm["harness"], farm["attempt"]) == ("WP01", "command", 1) and farm["job"]
        [changed] = record["files"]
        [conversation] = changed["conversations"]
        assert conversation["url"].endswith(f"/api/jobs/{farm['job']}/log?attempt=1")
        assert conversation["ranges"][0]["start_line"] == 1
    assert "Notes (agent-trace)" in repo.git("log", "--notes=agent-trace", "-1", commits[0])


def test_a_main_move_is_attested_signed_and_verified_with_its_summary(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)

    result = verify(repo, "main")

    assert result.exit_code == 0, result.output
    assert f"✓ {repo.head('main')[:12]}" in result.output
    assert "003-auth-system/WP01" in result.output and "2 agent commit(s) by command" in result.output
    assert "checks passed" in result.output and "audit entries match the farm's chain" in result.output
    row = Attestation.objects.get(commit_sha=repo.head("main"))
    assert row.noted and row.key_id == json.loads(note(repo, ATTESTATIONS, "main"))["signatures"][0]["keyid"]


def test_export_prints_each_stored_envelope(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)

    lines = run_cli("provenance export").output.splitlines()

    [row] = [json.loads(line) for line in lines]
    assert row["commit"] == repo.head("main") and row["envelope"]["payloadType"] == "application/vnd.in-toto+json"


def test_an_edited_attestation_note_fails_verification(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    envelope = json.loads(note(repo, ATTESTATIONS, "main"))
    statement = json.loads(__import__("base64").b64decode(envelope["payload"]))
    statement["predicate"]["checks"] = [{"name": "tests", "ok": True}]
    envelope["payload"] = __import__("base64").b64encode(json.dumps(statement).encode()).decode()
    repo.git("notes", "--ref", ATTESTATIONS, "add", "-f", "-m", json.dumps(envelope), "main")

    result = verify(repo, "main")

    assert result.exit_code == 1
    assert "tampered: the signature does not match the envelope" in result.output


def test_an_edited_agent_trace_note_fails_verification(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    sha = agent_commits(repo)[0]
    record = json.loads(note(repo, TRACES, sha))
    record["files"][0]["conversations"][0]["contributor"]["type"] = "human"
    repo.git("notes", "--ref", TRACES, "add", "-f", "-m", json.dumps(record), sha)

    result = verify(repo, "main")

    assert result.exit_code == 1
    assert f"the Agent Trace note of {sha[:12]} (WP01) was edited after it was attested" in result.output


def test_an_attestation_copied_onto_a_different_commit_fails_verification(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    repo.git("commit", "--allow-empty", "-qm", "pushed by hand")
    repo.git("notes", "--ref", ATTESTATIONS, "copy", "main~1", "main")

    result = verify(repo, "main")

    assert result.exit_code == 1 and "wrong_subject: the attestation names commit" in result.output


def test_a_commit_without_provenance_is_reported_as_such(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    repo.git("commit", "--allow-empty", "-qm", "pushed by hand")

    result = verify(repo, "main")

    assert result.exit_code == 3 and "no_provenance: no attestation note" in result.output


def test_a_rotated_key_is_reported_not_verified(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    farm_key.unlink()
    ensure_key()  # a new key: the old attestations were not signed by it

    result = verify(repo, "main")

    assert result.exit_code == 1 and "foreign_key: the envelope is signed by key" in result.output


def test_a_missing_key_says_how_to_get_one(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    farm_key.unlink()

    result = verify(repo, "main")

    assert result.exit_code == 6 and "run `agileplus init` on this host" in result.output


def test_verify_all_walks_mains_first_parent_history(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)

    result = verify(repo, "main", "--all")

    assert result.exit_code == 0, result.output
    assert "1 before_provenance, 1 verified" in result.output  # the initial commit predates the farm


def standalone(repo, *args: str, key: str) -> subprocess.CompletedProcess:
    """The script as a stranger runs it: Python alone, no AgilePlus on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "PYTHON"))}
    return subprocess.run([sys.executable, "-I", str(SCRIPT), "--key", key, "--repo", str(repo.path), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("pure", [False, True], ids=["cryptography", "pure-python"])
def test_the_standalone_script_verifies_with_only_the_public_key(tmp_path, farm_key, pure):
    repo, _ = merged_wp(tmp_path)

    done = standalone(repo, "main", *(["--pure"] if pure else []), key=public_key_text())

    assert done.returncode == 0, done.stdout + done.stderr
    assert "003-auth-system/WP01" in done.stdout


def test_the_standalone_script_fails_a_tampered_note_and_bad_input(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    envelope = json.loads(note(repo, ATTESTATIONS, "main"))
    envelope["signatures"][0]["sig"] = envelope["signatures"][0]["sig"][::-1]
    repo.git("notes", "--ref", ATTESTATIONS, "add", "-f", "-m", json.dumps(envelope), "main")

    tampered = standalone(repo, "main", "--pure", key=public_key_text())
    bad_key = standalone(repo, "main", key="not-a-key")

    assert tampered.returncode == 1 and "signature does not match" in tampered.stdout
    assert bad_key.returncode == 2 and "--key: expected the farm's ed25519 public key" in bad_key.stderr


def test_notes_follow_a_branch_rebased_onto_a_new_main_and_both_moves_verify(tmp_path, farm_key):
    from tests.integration.review.test_rebase_after_merge import two_editing_shared_lines, wp01_merged

    repo, _ = two_editing_shared_lines(tmp_path)
    before, after = wp01_merged(repo)

    record = json.loads(note(repo, TRACES, after))
    assert after != before and record["metadata"]["dev.agileplus"]["rewritten_from"] == [before]
    assert record["vcs"]["revision"] == after
    assert "APPROVED" in run_cli("review 003 WP02 --apply --inline").output
    result = verify(repo, "main", "--all")
    assert result.exit_code == 0, result.output
    assert "2 verified" in result.output


def test_one_batch_of_the_queue_is_one_attestation_naming_each_merge_it_added(tmp_path, farm_key):
    from agileplus.review.merge_queue import enqueue, process_queue
    from tests.integration.review.test_rebase_after_merge import two_in_review

    repo, feature = two_in_review(tmp_path, "commit:1")
    for code in ("WP01", "WP02"):
        enqueue(feature.work_packages.get(code=code), actor="ci:automation")
    process_queue(feature.project.repo_url)

    added = repo.git("rev-list", "--first-parent", "main~2..main").split()
    assert note(repo, ATTESTATIONS, added[0]) == note(repo, ATTESTATIONS, added[1])
    assert Attestation.objects.count() == 1
    result = verify(repo, "main", "--all")
    assert result.exit_code == 0 and "2 verified" in result.output, result.output
    assert "003-auth-system/WP01" in result.output and "003-auth-system/WP02" in result.output


def test_init_makes_the_farm_key_private_and_key_prints_its_public_part(tmp_path, settings):
    settings.PROVENANCE_KEY_FILE = tmp_path / "farm.key"

    made = run_cli("init")

    assert "Provenance key created" in made.output
    assert settings.PROVENANCE_KEY_FILE.stat().st_mode & 0o777 == 0o600
    assert json.loads(run_cli("provenance key --json").output)["public_key"] == public_key_text()
    assert "Provenance key kept" in run_cli("init").output


def test_verify_names_the_lines_each_agent_commit_wrote(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    first = agent_commits(repo)[-1]  # rev-list lists the newest first

    result = verify(repo, "main")

    assert f"    {first[:12]} model ? via command (job " in result.output
    assert "wp01/file_1.txt:1-1" in result.output


def test_verify_all_fails_on_a_commit_that_moved_main_outside_the_queue(tmp_path, farm_key):
    repo, _ = merged_wp(tmp_path)
    repo.git("commit", "--allow-empty", "-qm", "pushed by hand")

    result = verify(repo, "main", "--all")

    assert result.exit_code == 3 and "1 before_provenance, 1 no_provenance, 1 verified" in result.output


def test_a_host_without_the_key_still_merges_and_its_move_shows_as_without_provenance(tmp_path, settings):
    settings.PROVENANCE_KEY_FILE = tmp_path / "nowhere" / "farm.key"

    repo, feature = merged_wp(tmp_path)

    assert feature.work_packages.get(code="WP01").state == "done"
    assert not Attestation.objects.exists()
    ensure_key()
    result = verify(repo, "main")
    assert result.exit_code == 3 and "no_provenance" in result.output
