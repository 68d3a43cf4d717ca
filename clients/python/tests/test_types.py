"""The types hold: mypy --strict on the package, the tests and the README's
example, so an answer's keys are what a type checker lets a caller read
(``send`` without ``deliver_at`` is ``Sent``; ``counts`` with a filter
``FilteredCounts``...), and a model the document changed breaks here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_readme import example

HERE = Path(__file__).resolve().parents[1]


def test_mypy_strict(tmp_path: Path) -> None:
    readme = tmp_path / "readme_example.py"
    readme.write_text(example())
    done = subprocess.run(
        [
            sys.executable, "-m", "mypy",
            "--strict",
            "--cache-dir", str(tmp_path / "mypy-cache"),
            "src/herald_server",
            str(readme),
        ],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache"), "tests"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
