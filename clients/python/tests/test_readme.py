"""The README's example, run as it stands against a live node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ADMIN_KEY, Node

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    """The first python block after the ``## Example`` heading."""
    text = README.read_text()
    section = text[text.index("\n## Example\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's Example section has no python block"
    return match.group(1)


def test_the_readme_example_runs(node: Node) -> None:
    done = subprocess.run(
        [sys.executable, "-c", example()],
        env={**os.environ, "HERALD_URL": node.url, "HERALD_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"stored [0-9a-f-]{36} at seq 1", lines[0]), lines
    assert lines[1:3] == ["unseen system Your account is ready", "unread: 1"], lines
    assert lines[3].startswith('400 invalid_field category: unknown category "gossip"'), lines
    assert len(lines) == 4, lines
