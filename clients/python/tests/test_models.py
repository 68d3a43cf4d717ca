"""models.py is what docs/openapi.json generates, and the client uses it."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

from herald_server import models

SCRIPT = Path(__file__).resolve().parents[1] / "generate_models.py"


def test_committed_models_are_generated_from_the_openapi_document() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_client_names_only_generated_types() -> None:
    # Every annotation of the client resolves against models.py: a type the
    # document renamed or dropped fails here, not in a user's type checker.
    from herald_server.client import Herald

    for name in dir(Herald):
        member = getattr(Herald, name)
        if callable(member) and not name.startswith("__"):
            typing.get_type_hints(member, vars(sys.modules["herald_server.client"]))
    assert "SendRequest" in vars(models) and "SendView" in vars(models)
