#!/usr/bin/env python3
"""Writes src/herald_server/models.py from docs/openapi.json.

The SDK's types are generated, never edited by hand, so they cannot drift
from the server: docs/openapi.json is itself generated from the gateway's
code (and checked there), and tests/test_models.py fails when the
committed models.py differs from what this script writes now.

    python clients/python/generate_models.py          # rewrite models.py
    python clients/python/generate_models.py --check  # exit 1 if it differs

Needs datamodel-code-generator at the version pinned in pyproject.toml's
``test`` extra (``pip install -e 'clients/python[test]'``): another version
may write the same types differently.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent.parent / "docs" / "openapi.json"
MODELS = HERE / "src" / "herald_server" / "models.py"

HEADER = """\
# Generated from docs/openapi.json by clients/python/generate_models.py
# (datamodel-code-generator). Do not edit: run that script instead.
#
# TypedDicts: the API's JSON objects as plain dicts, typed for a checker;
# NotRequired marks a field the server may leave out."""

ARGS = [
    "--input-file-type", "openapi",
    "--output-model-type", "typing.TypedDict",
    "--target-python-version", "3.11",
    "--use-standard-collections",
    "--use-union-operator",
    # PEP 728's closed=True needs typing_extensions at run time; the SDK
    # has no runtime dependency.
    "--no-use-closed-typed-dict",
    "--use-schema-description",
    "--use-field-description",
    # No black/isort pass: their versions would change the output.
    "--formatters", "builtin",
    "--disable-timestamp",
    "--custom-file-header", HEADER,
]


def generate(out: Path) -> None:
    """Runs the generator on the spec, writing ``out``."""
    cmd = [sys.executable, "-m", "datamodel_code_generator", "--input", str(SPEC),
           "--output", str(out), *ARGS]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"datamodel-codegen failed ({done.returncode})")


def main() -> int:
    if "--check" not in sys.argv[1:]:
        generate(MODELS)
        print(f"wrote {MODELS.relative_to(HERE.parent.parent)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "models.py"
        generate(fresh)
        want = fresh.read_text()
    have = MODELS.read_text() if MODELS.exists() else ""
    if have == want:
        return 0
    diff = difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                "committed models.py", "generated now")
    sys.stdout.writelines(list(diff)[:200])
    print("\nclients/python/src/herald_server/models.py is not what docs/openapi.json "
          "generates: run python clients/python/generate_models.py and commit it")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
