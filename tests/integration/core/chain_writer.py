"""Run as a separate OS process by test_chain_concurrency: moves one WP through
planned → doing → for_review → done and adds NOTES plain entries, on the database
named by DATABASE_URL. Usage: python -m tests.integration.core.chain_writer WP_ID NOTES"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    import django

    django.setup()
    from agileplus.features.models import WorkPackage
    from agileplus.features.services import record_wp_entry, transition_wp

    wp_id, notes = int(sys.argv[1]), int(sys.argv[2])
    wp = WorkPackage.objects.get(pk=wp_id)
    for target, actor in (("doing", "agent:claude-code"), ("for_review", "agent:claude-code")):
        transition_wp(wp, target, actor=actor)
    for i in range(notes):
        record_wp_entry(wp, actor="ci:automation", transition=f"{wp.code}:note-{i}", metadata={"i": i})
    transition_wp(wp, "done", actor="ci:automation")


if __name__ == "__main__":
    main()
