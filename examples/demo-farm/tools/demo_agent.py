#!/usr/bin/env python3
"""The demo's scripted agent: implements one WP of the greeting service with real commits.

It reads the packaged prompt (stdin, or the file named by AGILEPLUS_PROMPT_FILE), finds
which WP it was given from the MISSION line, writes that WP's files, runs the tests and
commits with the feature's convention. It needs no model, so the whole farm runs anywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

FILES = {
    "WP01": [
        ("add the greet core with validation", {
            "src/greeter/core.py": '''"""The core greeting."""


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValueError("name must not be empty")
    return name


def greet(name: str) -> str:
    return f"Hello, {check_name(name)}!"
''',
        }),
        ("add core greeting tests", {
            "tests/test_core.py": '''import unittest

from src.greeter.core import greet


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self):
        self.assertEqual(greet("Ada"), "Hello, Ada!")

    def test_refuses_an_empty_name(self):
        with self.assertRaises(ValueError):
            greet("  ")
''',
        }),
    ],
    "WP02": [
        ("add formal greetings", {
            "src/greeter/formal.py": '''"""Formal greetings."""

from src.greeter.core import check_name


def formal(name: str, title: str = "Dr.") -> str:
    return f"Good day, {title} {check_name(name)}."
''',
        }),
        ("add formal greeting tests", {
            "tests/test_formal.py": '''import unittest

from src.greeter.formal import formal


class FormalTest(unittest.TestCase):
    def test_uses_title_and_name(self):
        self.assertEqual(formal("Lovelace", title="Countess"), "Good day, Countess Lovelace.")

    def test_refuses_an_empty_name(self):
        with self.assertRaises(ValueError):
            formal("")
''',
        }),
    ],
    "WP03": [
        ("add casual greetings", {
            "src/greeter/casual.py": '''"""Casual greetings."""

from src.greeter.core import check_name


def casual(name: str) -> str:
    return f"Hey {check_name(name)}!"
''',
        }),
        ("add casual greeting tests", {
            "tests/test_casual.py": '''import unittest

from src.greeter.casual import casual


class CasualTest(unittest.TestCase):
    def test_is_short_and_friendly(self):
        self.assertEqual(casual("Grace"), "Hey Grace!")
''',
        }),
    ],
    "WP04": [
        ("add the command line", {
            "src/greeter/cli.py": '''"""python -m src.greeter.cli NAME --style formal|casual"""

import argparse

from src.greeter.casual import casual
from src.greeter.formal import formal


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="greeter")
    parser.add_argument("name")
    parser.add_argument("--style", choices=["formal", "casual"], default="casual")
    args = parser.parse_args(argv)
    text = formal(args.name) if args.style == "formal" else casual(args.name)
    print(text)
    return text


if __name__ == "__main__":
    main()
''',
        }),
        ("add command line tests", {
            "tests/test_cli.py": '''import unittest

from src.greeter.cli import main


class CliTest(unittest.TestCase):
    def test_formal_style(self):
        self.assertEqual(main(["Turing", "--style", "formal"]), "Good day, Dr. Turing.")

    def test_casual_is_the_default(self):
        self.assertEqual(main(["Hopper"]), "Hey Hopper!")
''',
        }),
    ],
}


def say(text: str) -> None:
    print(text, flush=True)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def read_prompt() -> str:
    path = os.environ.get("AGILEPLUS_PROMPT_FILE")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    return "" if sys.stdin.isatty() else sys.stdin.read()


def main() -> int:
    delay = float(os.environ.get("DEMO_AGENT_DELAY", "1.0"))
    prompt = read_prompt()
    match = re.search(r"Implement (WP\d+)", prompt)
    if not match or match.group(1) not in FILES:
        say(f"demo agent: no work package I know in the prompt ({len(prompt)} bytes)")
        return 2
    wp = match.group(1)
    say(f"Reading specification and plan for {wp} ({len(prompt)} bytes of prompt)")
    time.sleep(delay)
    for message, files in FILES[wp]:
        for path, content in files.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
            say(f"Created {path} ({content.count(chr(10))} lines)")
            git("add", path)
        # A takeover continues the branch its lost attempt pushed: a step already committed there
        # changes nothing, and `git commit` would fail on an empty index.
        if subprocess.run(["git", "diff", "--cached", "--quiet"]).returncode == 0:
            say(f"Already committed by an earlier attempt: {message}")
            continue
        git("-c", "user.name=demo-agent", "-c", "user.email=demo-agent@agileplus.local",
            "commit", "-q", "-m", f"feat({wp}): {message}")
        time.sleep(delay)
    say("Running tests locally...")
    result = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
                            capture_output=True, text=True)
    ran = re.search(r"Ran (\d+) tests?", result.stderr)
    total = int(ran.group(1)) if ran else 0
    passed = total if result.returncode == 0 else 0
    say(f"Tests passing: {passed}/{total}")
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
