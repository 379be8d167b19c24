"""The farm's signing key and the signed attestation of a main move: an in-toto Statement v1
in a DSSE envelope, signed with ed25519 over the DSSE pre-authentication encoding."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from agileplus.core.errors import DomainError
from agileplus.provenance.standalone import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, key_id, pae


class KeyMissing(DomainError):
    code = "provenance_key_missing"
    exit_code = 6


def ensure_key(path: Path | None = None) -> tuple[Path, bool]:
    """The farm's key file, made (0600, the raw 32-byte seed in base64) when absent; True when made."""
    path = path or settings.PROVENANCE_KEY_FILE
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                      serialization.NoEncryption())
    # Created 0600 from the start: never readable by others, not even for a moment.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(base64.b64encode(seed).decode() + "\n")
    return path, True


def private_key(path: Path | None = None) -> Ed25519PrivateKey:
    path = path or settings.PROVENANCE_KEY_FILE
    try:
        seed = base64.b64decode(path.read_text().strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(seed)
    except FileNotFoundError:
        raise KeyMissing(f"the farm's provenance key {path} does not exist", field="AGILEPLUS_PROVENANCE_KEY_FILE",
                         fix="run `agileplus init` on this host, or copy the farm's key file here (0600)") from None
    except ValueError:
        raise KeyMissing(f"the farm's provenance key {path} is not an ed25519 key",
                         field="AGILEPLUS_PROVENANCE_KEY_FILE",
                         fix="restore the farm's key file; a new key cannot verify older attestations") from None


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(path: Path | None = None) -> str:
    """What ``agileplus provenance key`` prints and the standalone script takes: base64 of 32 bytes."""
    return base64.b64encode(public_bytes(private_key(path))).decode()


def statement(subjects: list[dict], predicate: dict) -> dict:
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def commit_subject(repo: str, commit: str, tree: str) -> dict:
    return {"name": f"git+{repo}@{commit}", "digest": {"gitCommit": commit, "gitTree": tree}}


def sign(body: dict, key: Ed25519PrivateKey) -> dict:
    """The DSSE envelope of ``body`` (compact JSON, keys sorted), signed by ``key``."""
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": key_id(public_bytes(key)), "sig": base64.b64encode(signature).decode()}]}


def envelope_text(envelope: dict) -> str:
    return json.dumps(envelope, sort_keys=True, indent=1) + "\n"
