"""Every command line of the project answers ``--help`` and argument errors before importing a heavy library:
``python -m utils.X --help`` runs in a fresh interpreter, which then reports the heavy modules it loaded."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Libraries that take seconds to import, none of which parsing a command line needs.
HEAVY = ("sklearn", "skops", "aif360", "alibi_detect", "shap", "pandera", "dask")
#: Runs the command line as ``python -m`` does, then prints the heavy modules loaded, after a marker.
_PROBE = """
import runpy, sys
sys.argv, code = sys.argv[1:], None
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
print("exit", code, "heavy", ",".join(sorted(name for name in {heavy!r} if name in sys.modules)) or "none")
"""


def _command_lines() -> list[str]:
    """The ``utils`` modules ``python -m`` runs: packages with a ``__main__``, modules with a ``__main__`` guard."""
    found = []
    for path in sorted((ROOT / "utils").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name == "__main__.py":
            found.append(name.removesuffix(".__main__"))
        elif any(
            isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
            for node in ast.parse(path.read_text()).body
        ):
            found.append(name)
    return found


COMMAND_LINES = _command_lines()


def test_every_command_line_is_found():
    assert {"utils.batch", "utils.monitoring", "utils.pipeline", "utils.serving", "utils.data"} <= set(COMMAND_LINES)


@pytest.mark.slow
@pytest.mark.parametrize("arguments", [["--help"], ["--no-such-option"]], ids=["help", "argument-error"])
@pytest.mark.parametrize("module", COMMAND_LINES)
def test_a_command_line_parses_without_heavy_imports(module, arguments):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = _PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe, module, *arguments], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    _, code, _, heavy = done.stdout.splitlines()[-1].split()
    assert code == ("0" if arguments == ["--help"] else "2"), done.stderr
    assert heavy == "none", f"python -m {module} {' '.join(arguments)} imported {heavy}"
