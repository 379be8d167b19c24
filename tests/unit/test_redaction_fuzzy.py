"""``redact`` finds a secret of ``FUZZY_MIN_CHARS`` or more also split by whitespace, in any
letter case, and base32-, rot13-, hex-, base64- or URL-encoded; ``redact_lines`` finds one split
across consecutive lines of a stream."""

from __future__ import annotations

import base64
import codecs
from urllib.parse import quote

import pytest

from agileplus.core.redaction import FUZZY_MIN_CHARS, REDACTED, holds_secret, redact, redact_lines

# 16 characters: each half (8) is shorter than a fragment, so only the whole is recognisable.
SECRET = "Qx7Lm9Pz4Rt8Wv1K"
RAW = SECRET.encode()


def mixed_case(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


FORMS = {
    "halves split by a space": f"{SECRET[:8]} {SECRET[8:]}",
    "halves on two lines": f"{SECRET[:8]}\n{SECRET[8:]}",
    "halves in two paragraphs (git commit -m … -m …)": f"{SECRET[:8]}\n\n{SECRET[8:]}",
    "one character per space": " ".join(SECRET),
    "upper case": SECRET.upper(),
    "lower case": SECRET.lower(),
    "upper case, split": f"{SECRET.upper()[:5]}\t{SECRET.upper()[5:]}",
    "base32": base64.b32encode(RAW).decode(),
    "base32 without padding, lower case": base64.b32encode(RAW).decode().rstrip("=").lower(),
    "rot13": codecs.encode(SECRET, "rot13"),
    "rot13, upper case": codecs.encode(SECRET, "rot13").upper(),
    "hex, mixed case": mixed_case(RAW.hex()),
    "hex split in words of 4": " ".join(RAW.hex()[i:i + 4] for i in range(0, len(RAW.hex()), 4)),
    **{f"urlsafe base64 without padding, {n} bytes before":
       base64.urlsafe_b64encode(b"\xfb" * n + RAW).decode().rstrip("=") for n in range(3)},
    "base64 wrapped over lines": "\n".join(base64.b64encode(RAW).decode()[i:i + 6] for i in range(0, 24, 6)),
    "url-encoded with lower-case escapes": quote(SECRET, safe="").lower(),
    "reversed, upper case": SECRET[::-1].upper(),
}


@pytest.mark.parametrize("name", FORMS, ids=list(FORMS))
def test_each_form_of_a_secret_is_redacted_whole(name):
    assert redact(f"the agent says: {FORMS[name]} (end)", [SECRET]) == f"the agent says: {REDACTED} (end)"


@pytest.mark.parametrize("n", range(1, 5))
def test_base32_is_found_at_each_byte_alignment_leaving_only_the_characters_of_what_came_before(n):
    encoded = base64.b32encode(b"k" * n + RAW).decode()

    before, redacted, after = redact(f"says: {encoded} (end)", [SECRET]).partition(REDACTED)

    assert redacted and after == " (end)" and encoded[:8 * n // 5].startswith(before.removeprefix("says: "))


def test_a_commit_message_with_a_secret_in_two_paragraphs_holds_it():
    message = f"feat(WP01): work\n\n{SECRET[:8]}\n\n{SECRET[8:]}\n"

    assert holds_secret(message, [SECRET])


def test_a_secret_shorter_than_the_fuzzy_minimum_is_found_only_as_written():
    short = "k3Y9pQz"
    assert len(short) < FUZZY_MIN_CHARS

    assert redact(f"x {short} y", [short]) == f"x {REDACTED} y"
    assert redact(f"x {short.upper()} {short[:3]} {short[3:]} y", [short]) == f"x {short.upper()} k3Y 9pQz y"


def test_ordinary_words_in_capitals_and_run_together_are_left_alone():
    line = "RUNNING pytest -q: 12 passed, 0 failed in 3.2s (src/auth/login.py)  OK  Q x 7 L m"

    assert redact(line, [SECRET, "sk-live-7Qx2Lm9Pz4Rt8Wv1"]) == line


def test_a_secret_split_across_consecutive_lines_of_a_stream_is_redacted_in_both():
    lines = ["Running the deploy", SECRET[:8], SECRET[8:], "done"]

    assert redact_lines(lines, secret_values=[SECRET]) == ["Running the deploy", REDACTED, REDACTED, "done"]


def test_the_end_of_the_previous_line_is_read_with_the_next():
    out = redact_lines([f"{SECRET[8:]} and more"], before=f"stored earlier: {SECRET[:8]}", secret_values=[SECRET])

    assert out == [f"{REDACTED} and more"]


def test_the_lines_that_follow_are_read_not_returned():
    out = redact_lines([f"key: {SECRET[:8]}"], after=[SECRET[8:]], secret_values=[SECRET])

    assert out == [f"key: {REDACTED}"]
