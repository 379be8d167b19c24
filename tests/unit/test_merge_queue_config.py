"""`merge.queue` in .kittify/config.yaml: on by default, `off` or `{batch_max, bisect, speculative}`;
anything else is refused naming the key and the fix, at import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agileplus.core.errors import DomainError, ImportFailed
from agileplus.features.importer import import_path
from agileplus.features.project_config import QueueConfig, parse_queue_config, validate_merge_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "003-auth-system"


def test_the_queue_is_on_by_default():
    assert validate_merge_config(None) == QueueConfig(enabled=True, batch_max=8, bisect=True)
    assert validate_merge_config({"strategy": "merge"}).enabled


@pytest.mark.parametrize("value", [False, "off"])
def test_off_turns_the_queue_off(value):
    assert not parse_queue_config(value).enabled


def test_a_mapping_sets_the_batch_and_bisection():
    assert parse_queue_config({"batch_max": 3, "bisect": False}) == QueueConfig(True, 3, False)


@pytest.mark.parametrize(("value", "field"), [
    ({"batch_max": 0}, "merge.queue.batch_max"),
    ({"batch_max": "8"}, "merge.queue.batch_max"),
    ({"bisect": "yes"}, "merge.queue.bisect"),
    ({"batch": 4}, "merge.queue.batch"),
    ("sometimes", "merge.queue"),
])
def test_a_bad_value_names_the_key(value, field):
    with pytest.raises(DomainError) as refused:
        parse_queue_config(value)
    assert refused.value.field == field and refused.value.fix


def test_speculative_pipelining_is_refused_as_not_built():
    with pytest.raises(DomainError, match="speculative is not built"):
        parse_queue_config({"speculative": True})


def test_a_rebase_strategy_needs_the_queue_off():
    with pytest.raises(DomainError, match="cannot be used with the merge queue") as refused:
        validate_merge_config({"strategy": "rebase"})
    assert "queue: off" in refused.value.fix
    assert not validate_merge_config({"strategy": "rebase", "queue": False}).enabled


@pytest.mark.django_db
def test_import_refuses_a_bad_queue_config_with_its_line(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    config = repo / ".kittify" / "config.yaml"
    config.write_text(config.read_text() + "merge:\n  queue:\n    batch_max: 0\n")

    with pytest.raises(ImportFailed, match=r"config\.yaml:\d+: merge\.queue\.batch_max must be a whole number"):
        import_path(repo, actor="human:alice")
