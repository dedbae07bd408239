"""The README's first-session block: the commands a new user runs after `make run`, in order.
The newcomer test runs exactly these, so the README and the test cannot drift apart."""

from __future__ import annotations

from pathlib import Path

MARK = "<!-- first-session:"


def first_session(readme: Path) -> list[str]:
    """The commands of the fenced block after MARK, comments stripped, one per line."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(MARK)), None)
    if start is None or not lines[start + 1].startswith("```"):
        raise ValueError(f"{readme}: no fenced block after {MARK}")
    commands = []
    for line in lines[start + 2:]:
        if line.startswith("```"):
            return commands
        command = line.split("  #", 1)[0].strip()
        if command:
            commands.append(command)
    raise ValueError(f"{readme}: the block after {MARK} is not closed")
