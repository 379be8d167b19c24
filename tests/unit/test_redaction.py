"""``redact``: every form in which an agent can print a secret it holds is replaced by ***."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from agileplus.core.redaction import REDACTED, fingerprint, redact, redact_data
from agileplus.core.secrets import resolve_environment, worker_secret_values

SECRET = "sk-live-7Qx2Lm9Pz4Rt8Wv1"
ENCODED = SECRET.encode()

FORMS = {
    "plain": SECRET,
    "reversed": SECRET[::-1],
    "hex": ENCODED.hex(),
    "HEX": ENCODED.hex().upper(),
    "base64": base64.b64encode(ENCODED).decode(),
    "base64 of echo (trailing newline)": base64.b64encode(ENCODED + b"\n").decode(),
    "base64, one byte before": base64.b64encode(b"k=" + ENCODED).decode(),
    "base64, two bytes before": base64.b64encode(b"=" + ENCODED).decode(),
    "base64 without padding": base64.b64encode(ENCODED + b"\n").decode().rstrip("="),
    "urlsafe base64": base64.urlsafe_b64encode(b"\xfb" + ENCODED).decode(),
    "base64 of the reversed value": base64.b64encode(ENCODED[::-1]).decode(),
    "url-encoded": quote(SECRET, safe=""),
    "first half": SECRET[:13],
    "last half": SECRET[-13:],
    "base64 wrapped in printf text": f"token=[{base64.b64encode(ENCODED).decode()}]",
    "hex bytes as od prints them": " ".join(f"{b:02x}" for b in ENCODED),
    "hex as xxd prints it": " ".join(ENCODED[i:i + 2].hex() for i in range(0, len(ENCODED), 2)),
    "escaped hex bytes": "".join(f"\\x{b:02x}" for b in ENCODED),
    "a C array of bytes": ", ".join(f"0x{b:02X}" for b in ENCODED),
    "hex of the reversed value": ENCODED[::-1].hex(),
}


@pytest.mark.parametrize("name", FORMS, ids=list(FORMS))
def test_each_form_of_a_secret_is_redacted(name):
    line = f"the agent says: {FORMS[name]} (end)"

    out = redact(line, [SECRET])

    assert REDACTED in out and out.startswith("the agent says: ") and out.endswith(" (end)")
    for form in (SECRET, SECRET[::-1], ENCODED.hex(), base64.b64encode(ENCODED).decode()[:-2]):
        assert form not in out


@pytest.mark.parametrize("prefix", [b"", b"k", b"=k"], ids=["aligned", "one byte before", "two bytes before"])
def test_nothing_of_a_base64_form_is_left_around_the_redaction(prefix):
    encoded = base64.b64encode(prefix + ENCODED + b"\n").decode()

    assert redact(f"found {encoded} here", [SECRET]) == f"found {REDACTED} here"


def test_ordinary_text_is_left_alone():
    line = "Commit: feat(WP01): change 1 (abcdef1234567890) files wp01/file_1.txt"

    assert redact(line, [SECRET]) == line


def test_values_shorter_than_six_characters_are_not_secrets():
    assert redact("exit 1 after 12345 tries", ["12345", "1"]) == "exit 1 after 12345 tries"


def test_every_agileplus_secret_and_harness_credential_of_the_worker_is_held(monkeypatch):
    monkeypatch.setenv("AGILEPLUS_SECRET_DEPLOY_TOKEN", "deploy-9f8e7d6c5b")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-abcdefghijklmnop")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("DATABASE_URL", "postgres://farm:db-pass-31337@db:5432/farm")
    monkeypatch.setenv("HOME_PAGE", "https://example.org/not-a-secret")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://proxy-user:proxy-pass-8d2e@llm.example")

    held = worker_secret_values()

    assert {"deploy-9f8e7d6c5b", "sk-ant-api03-abcdefghijklmnop", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "db-pass-31337", "proxy-pass-8d2e"} <= set(held)
    assert "https://example.org/not-a-secret" not in held
    assert redact("key sk-ant-api03-abcdefghijklmnop") == f"key {REDACTED}"


def test_values_of_the_secrets_file_are_held(tmp_path):
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("NPM_PUBLISH=npm_4Hq8Zr2Vx7Kc\n")
    secrets_file.chmod(0o600)

    assert "npm_4Hq8Zr2Vx7Kc" in worker_secret_values({}, secrets_file)


def test_a_secret_resolved_for_an_agent_under_its_plain_name_is_held():
    resolve_environment({"API_KEY": "${{ secrets.PLAIN_NAMED }}"}, source_env={"PLAIN_NAMED": "plain-b71c0d3e9a"})

    assert redact("value plain-b71c0d3e9a") == f"value {REDACTED}"


def test_redact_data_reaches_every_string_of_a_structure():
    data = {"message": f"leak {SECRET}", "files": [f"dir/{SECRET[::-1]}.txt"], "count": 3, SECRET: None}

    out = redact_data(data, [SECRET])

    assert SECRET not in repr(out) and SECRET[::-1] not in repr(out)
    assert out["count"] == 3 and out["message"] == f"leak {REDACTED}"


def test_a_fingerprint_names_length_and_hash_never_the_text():
    print_ = fingerprint(f"feat: {SECRET}")

    assert SECRET not in print_ and print_.startswith("sha256:") and f"({len(SECRET) + 6} chars)" in print_
    assert fingerprint(f"feat: {SECRET}") == print_ != fingerprint("feat: other")
