"""PostgreSQL connections end a silent peer's session (settings.py), and keep the server settings
a DATABASE_URL brings itself. Read from a fresh process: settings are read once, at import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READ_OPTIONS = ("import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'agileplus.settings'\n"
                "from django.conf import settings\n"
                "print(json.dumps(settings.DATABASES['default']['OPTIONS']))")


def options_for(url: str) -> dict:
    out = subprocess.run([sys.executable, "-c", READ_OPTIONS], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "AGILEPLUS_DATA_DIR": "/tmp/ap-opts"})
    return json.loads(out.stdout)


def test_a_connection_ends_a_silent_peers_session_on_both_ends():
    options = options_for("postgres://u@db.example:5432/farm")

    assert (options["keepalives_idle"], options["tcp_user_timeout"]) == (7, 15000)
    assert "-c tcp_keepalives_idle=7" in options["options"]
    assert "-c idle_in_transaction_session_timeout=600000" in options["options"]


def test_server_settings_in_the_database_url_are_kept():
    options = options_for("postgres://u@db.example:5432/farm?options=-c%20search_path%3Dfarm")

    assert options["options"].endswith("-c search_path=farm") and "-c tcp_keepalives_idle=7" in options["options"]
