"""The `agileplus` commands the documentation shows, so tests can hold the docs to the CLI.

Where commands are found (``documented_commands``):
- inline code spans that start with ``agileplus `` (README tables and prose), and
- lines that start with ``agileplus `` inside fenced code blocks (a trailing ``# comment`` is
  dropped; a line that only *contains* the command, like ``docker run … agileplus worker``, is not
  one).

Each is either a **synopsis** (it names placeholders: ``FEATURE``, ``[--tail N]``, ``list|show``)
or an **example** (every word is literal). ``concrete_args`` turns a synopsis into arguments a
user could type, with one value per placeholder (``PLACEHOLDERS``), taking the first of each
``a|b`` choice; an example is used as written.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
             "examples/README.md"]
PLACEHOLDERS = {"FEATURE": "003", "F": "003", "WP": "WP02", "STATE": "planned", "JOB": "JOB", "PATH": ".",
                "N": "1", "S": "60", "NAME": "w1", "OTHER": "codex", "TEXT": "why"}
SPAN = re.compile(r"`(agileplus [^`]+)`")
FENCE = re.compile(r"^\s*```")


@dataclass(frozen=True)
class DocCommand:
    where: str  # README.md:61
    text: str  # agileplus logs FEATURE WP [--tail N] [--follow]
    fenced: bool = False  # a line of a code block (typed as is), not a span in prose

    @property
    def names_only(self) -> bool:
        """Prose naming a command (``agileplus feature import`` reads …), not an invocation."""
        return not self.fenced and not any(w.startswith("-") or w.isupper() or w[:1].isdigit()
                                           for w in self.text.split()[1:])

    @property
    def is_synopsis(self) -> bool:
        return bool(re.search(r"[\[\]|…]", self.text)) or any(
            re.fullmatch(r"[A-Z]+", word) for word in self.text.split())

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def documented_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for name in DOCUMENTS:
        in_fence = False
        for number, line in enumerate((ROOT / name).read_text().splitlines(), start=1):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if in_fence:
                command = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
                if command.startswith("agileplus "):
                    found.append(DocCommand(f"{name}:{number}", command, fenced=True))
                continue
            for span in SPAN.findall(line):
                found.append(DocCommand(f"{name}:{number}", span.replace("\\|", "|").strip()))
    return found


def concrete_args(command: DocCommand) -> list[tuple[list[str], bool]]:
    """The arguments after ``agileplus``, and whether they are complete: one per subcommand
    choice of ``jobs list|show|cancel`` (a list of names only, without each one's arguments)."""
    text = command.text.replace("…", " ").replace("[", " ").replace("]", " ")
    words = shlex.split(text)[1:]
    args: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:  # `--wp WP02 | --all`: keep the first choice
            skip_next = False
            continue
        if word == "|":
            skip_next = True
            continue
        args.append(PLACEHOLDERS.get(word, word))
    # `jobs list|show|cancel`: every subcommand is documented; an option value `agent|wp` takes the first.
    choices = [i for i, w in enumerate(args) if "|" in w and not w.startswith("-")
               and not (i > 0 and args[i - 1].startswith("--"))]
    if not choices:
        return [([w.split("|")[0] for w in args], True)]
    i = choices[0]
    return [([*[w.split("|")[0] for w in args[:i]], choice], False) for choice in args[i].split("|")]


def resolve(args: list[str]):
    """The click command ``args`` name, and the arguments left for it."""
    import click

    from agileplus.cli import main as cli_main

    cli_main._load_commands()
    command: click.Command = cli_main.cli
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name, args = args[0], args[1:]
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"no command `{name}` under `{command.name}`"
        command = sub
    return command, args


def runs_as_written(command: DocCommand) -> bool:
    """A literal command a user can type as is (prose naming `agileplus feature import` is not)."""
    import click

    if command.is_synopsis:
        return False
    leaf, rest = resolve(shlex.split(command.text)[1:])
    try:
        leaf.make_context(leaf.name, rest)
    except (click.UsageError, click.exceptions.Exit):
        return False
    return not isinstance(leaf, click.Group)
