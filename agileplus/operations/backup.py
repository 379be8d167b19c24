"""``agileplus backup FILE`` / ``agileplus restore FILE``: the database and the origins' notes.

FILE is a gzip'd tar holding ``manifest.json`` (what is inside, and each feature's audit chain
head), ``database.apjson`` (every table but content types and permissions, which ``migrate``
makes, written by Django's ``dumpdata`` with whole timestamps: ``dumpformat.py``) and, per
project whose origin has git notes, ``notes/<project>.bundle`` (its ``refs/notes/*``). The same
file restores on SQLite or PostgreSQL, whichever the backup came from. After loading, every
feature's audit chain is verified and compared with the head the manifest recorded: a restore
that ``events audit-verify`` would not accept fails, naming the feature.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

from django.core import serializers
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.core.db import migrate_database
from agileplus.core.errors import DomainError
from agileplus.features.models import Feature, Project
from harnesses.git import GitError, git

FORMAT = "apjson"
VERSION = 1
LEFT_OUT = ["contenttypes", "auth.permission", "sessions"]
serializers.register_serializer(FORMAT, "agileplus.operations.dumpformat")


def _chain_heads() -> dict[str, dict]:
    heads = {}
    for feature in Feature.objects.order_by("slug"):
        last = AuditEntry.objects.filter(feature=feature).order_by("-seq").values("seq", "hash").first()
        heads[feature.slug] = last or {"seq": 0, "hash": ""}
    return heads


def _notes_bundle(origin: str, target: Path) -> bool:
    """The origin's ``refs/notes/*`` as a git bundle at ``target``; False when it has none."""
    with tempfile.TemporaryDirectory(prefix="agileplus-backup-") as scratch:
        git("init", "--quiet", "--bare", scratch)
        git("fetch", "--quiet", origin, "+refs/notes/*:refs/notes/*", cwd=scratch)
        if not git("for-each-ref", "refs/notes/", cwd=scratch):
            return False
        git("bundle", "create", str(target), "--all", cwd=scratch)
    return True


def backup(path: Path, *, notes: bool = True) -> dict:
    """Write the backup file (with the origins' notes unless ``notes`` is False); returns its manifest."""
    path = Path(path)
    if path.is_dir() or not path.parent.is_dir():
        raise DomainError(f"cannot write a backup to {path}", field="FILE",
                          fix="name a file in an existing folder, e.g. /backups/farm-2026-12-06.tar.gz")
    with tempfile.TemporaryDirectory(prefix="agileplus-backup-") as scratch:
        folder = Path(scratch)
        (folder / "notes").mkdir()
        with transaction.atomic():  # one consistent read of every table (a snapshot on PostgreSQL)
            heads = _chain_heads()
            call_command("dumpdata", format=FORMAT, exclude=LEFT_OUT, natural_foreign=True,
                         output=str(folder / f"database.{FORMAT}"), verbosity=0)
        bundled = {}
        for name, origin in Project.objects.values_list("name", "repo_url") if notes else ():
            try:
                if _notes_bundle(origin, folder / "notes" / f"{name}.bundle"):
                    bundled[name] = origin
            except GitError as exc:
                raise DomainError(f"cannot read the git notes of {origin} (project {name}): {exc}",
                                  field="repo_url", fix="make the origin reachable from here and run again, "
                                                        "or back up without notes (--no-notes)") from None
        manifest = {"format": VERSION, "created_at": timezone.now().isoformat(), "vendor": connection.vendor,
                    "audit_heads": heads, "notes": bundled}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial = path.with_name(path.name + ".partial")
        partial.touch(mode=0o600)  # it holds the webhook secrets and every agent transcript: the owner's only
        partial.chmod(0o600)
        with tarfile.open(partial, "w:gz") as tar:
            for item in sorted(folder.rglob("*")):
                tar.add(item, arcname=str(item.relative_to(folder)), recursive=False)
        partial.replace(path)  # a backup file is whole or absent
    return manifest


def _safe_extract(path: Path, folder: Path) -> dict:
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(folder, filter="data")  # no absolute paths, no links out of the folder
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise DomainError(f"{path} is not an AgilePlus backup ({exc})", field="FILE",
                          fix="give a file written by `agileplus backup`") from None
    if manifest.get("format") != VERSION:
        raise DomainError(f"{path} has backup format {manifest.get('format')!r}; this version reads {VERSION}",
                          field="FILE")
    return manifest


def _restore_notes(bundle: Path, origin: str) -> None:
    with tempfile.TemporaryDirectory(prefix="agileplus-restore-") as scratch:
        git("init", "--quiet", "--bare", scratch)
        git("fetch", "--quiet", str(bundle), "+refs/notes/*:refs/notes/*", cwd=scratch)
        git("push", "--quiet", "--force", origin, "refs/notes/*:refs/notes/*", cwd=scratch)


def restore(path: Path, *, replace: bool = False) -> dict:
    """Load a backup into this farm's database (empty, or emptied with ``replace``), put the notes
    back on the origins, and verify every audit chain. Returns a report."""
    path = Path(path)
    if not path.is_file():
        raise DomainError(f"{path} does not exist", field="FILE", fix="give the file `agileplus backup` wrote")
    with tempfile.TemporaryDirectory(prefix="agileplus-restore-") as scratch:
        folder = Path(scratch)
        manifest = _safe_extract(path, folder)
        migrate_database()
        if Feature.objects.exists() or AuditEntry.objects.exists():
            if not replace:
                raise DomainError(f"the database {connection.settings_dict['NAME']} already holds a farm",
                                  field="DATABASE_URL", fix="restore into an empty database, or pass --replace "
                                                            "to delete everything in this one first")
            call_command("flush", interactive=False, verbosity=0)
        call_command("loaddata", str(folder / f"database.{FORMAT}"), verbosity=0)
        for name, origin in manifest.get("notes", {}).items():
            try:
                _restore_notes(folder / "notes" / f"{name}.bundle", origin)
            except (GitError, subprocess.SubprocessError) as exc:
                raise DomainError(f"the database is restored, but the git notes of {origin} are not: {exc}",
                                  field="repo_url", fix="make the origin writable from here and run restore "
                                                        "again with --replace") from None
    return {"restored_from": str(path), "created_at": manifest["created_at"], "notes": sorted(manifest["notes"]),
            "audit": verify_restored(manifest["audit_heads"])}


def verify_restored(heads: dict[str, dict]) -> dict[str, dict]:
    """Every chain verifies, and ends where it ended when the backup was made."""
    report = {}
    now = _chain_heads()
    for feature in Feature.objects.order_by("slug"):
        result = verify_chain(feature)
        report[feature.slug] = {"ok": result.ok and now[feature.slug] == heads.get(feature.slug),
                                "entries": result.count}
    bad = [slug for slug, r in report.items() if not r["ok"]]
    if bad:
        raise DomainError(f"the audit chain of {', '.join(bad)} does not verify after the restore", field="FILE",
                          fix="the backup file was changed or is incomplete: restore an older one")
    return report
