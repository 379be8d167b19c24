"""`agileplus provenance key|export|verify`: thin over agileplus.provenance."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click

from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json, mark_json
from agileplus.provenance import attestation, services
from agileplus.provenance.standalone import key_id
from agileplus.provenance.verify import verify


@cli.group("provenance")
def provenance() -> None:
    """Who wrote what on main: Agent Trace notes, signed attestations of main moves, verification."""


@provenance.command("key")
@json_option
def key_command(as_json: bool) -> None:
    """The farm's public key (ed25519, base64): what verifiers need."""
    public = attestation.public_key_text()
    ident = key_id(base64.b64decode(public))
    if as_json:
        echo_json({"algorithm": "ed25519", "public_key": public, "key_id": ident})
        return
    echo(f"ed25519 {public}  (key id {ident})")


@provenance.command("export")
@click.option("--repo", "repo", default=None, help="Only the attestations of this repository URL")
def export_command(repo: str | None) -> None:
    """Every stored attestation (DSSE envelope and the move it signs), one JSON object a line."""
    mark_json()
    for row in services.export_attestations(repo):
        echo(json.dumps(row, sort_keys=True, default=str))


@provenance.command("verify")
@click.argument("ref", required=False, default="HEAD", metavar="[REF]")
@click.option("--all", "every", is_flag=True, help="Every commit of REF's first-parent history")
@click.option("--repo", "repo", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The clone of the target repository")
@click.option("--no-fetch", is_flag=True, help="Use the notes already in the clone (else fetched from origin)")
@json_option
def verify_command(ref: str, every: bool, repo: Path, no_fetch: bool, as_json: bool) -> None:
    """Check REF's signed attestation, its subject, its Agent Trace notes and its audit entries."""
    report = verify(repo, ref, every=every, fetch=not no_fetch)
    if as_json:
        echo_json({"ok": report.exit_code == 0, "counts": report.counts(),
                   "verdicts": [{"commit": v.commit, "status": v.status, "reason": v.reason}
                                for v in report.verdicts]})
    else:
        for line in report.lines:
            echo(line)
        if every:
            echo("  " + ", ".join(f"{n} {status}" for status, n in sorted(report.counts().items())))
    sys.exit(report.exit_code)
