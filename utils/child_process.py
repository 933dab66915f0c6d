"""Python child processes that run a function of this very ``utils`` package, on a core of their own.

A child starts from the folder holding the package (Python puts the working folder first on its path), so it
imports the same code as its parent wherever the parent runs from; unlike ``multiprocessing``'s spawned processes,
it never imports the parent's main script again.
"""

from __future__ import annotations

import os
import subprocess
import sys

#: The folder holding the utils package.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_child(module: str, **options) -> subprocess.Popen:
    """Start ``python -c "from <module> import main; main()"`` (``options`` as for :class:`subprocess.Popen`)."""
    command = [sys.executable, "-c", f"from {module} import main; main()"]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, **options)
