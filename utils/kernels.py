"""The pipeline's step kernels, each started while the steps before it run.

A step's kernel starts, over IPC sockets in a folder of its own, as soon as the step :data:`KERNELS_AHEAD` steps
before it begins, and imports what the step's notebook imports (the ``import`` statements of its first code cell,
run at start-up without entering the execution count), so that the start-up and the imports of a step overlap the
work of the steps before. A finished step's kernel is asked to shut down at once and waited for only after the next
step: its own clean-up (``atexit`` handlers, servers it started) overlaps that step too. A warm-up import that fails
is no error here: the notebook's own cell imports again and fails there, where the executed notebook shows it.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

#: The kernel every step runs in (the notebooks' kernelspec).
KERNEL_NAME = "python3"


def warm_up_imports(notebook: str | Path) -> str:
    """The ``import`` statements of ``notebook``'s first code cell, one per line (IPython magics left out)."""
    cells = nbformat.read(notebook, as_version=4).cells
    first = next((cell.source for cell in cells if cell.cell_type == "code"), "")
    python = "\n".join(line for line in first.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        statements = ast.parse(python).body
    except SyntaxError:
        return ""
    return "\n".join(ast.unparse(node) for node in statements if isinstance(node, ast.Import | ast.ImportFrom))


class StepKernel:
    """One step's kernel, started at once in ``cwd`` (see the module's docstring); ``ahead``: more code it runs at
    start-up, after the notebook's imports (say, importing a library the notebook imports deep inside a call)."""

    def __init__(self, notebook: str | Path, cwd: str | Path, ahead: str = ""):
        self._sockets = tempfile.mkdtemp(prefix="kernel-")
        self.manager = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(Path(self._sockets, "ipc")))
        warm_up = "\n".join(filter(None, [warm_up_imports(notebook), ahead]))
        extra = [f"--IPKernelApp.exec_lines={warm_up}"] if warm_up else []
        try:
            run_sync(self.manager.start_kernel)(cwd=str(cwd), extra_arguments=extra)
        except BaseException:
            shutil.rmtree(self._sockets, ignore_errors=True)
            raise
        self._shutdown_requested = False

    def request_shutdown(self) -> None:
        """Ask the kernel to shut down, without waiting for it."""
        if not self._shutdown_requested and run_sync(self.manager.is_alive)():
            run_sync(self.manager.request_shutdown)()
        self._shutdown_requested = True

    def close(self) -> None:
        """Shut the kernel down (killing it if it does not stop within the manager's wait) and remove its sockets."""
        try:
            self.request_shutdown()
            run_sync(self.manager.finish_shutdown)()
            run_sync(self.manager.cleanup_resources)()
        finally:
            shutil.rmtree(self._sockets, ignore_errors=True)


#: How many notebooks ahead of the running one have their kernel started: two, so that a short step (02, 08) does
#: not leave the next one waiting for its imports.
KERNELS_AHEAD = 2


class KernelsAhead:
    """The kernels of notebooks run in order, each started :data:`KERNELS_AHEAD` notebooks ahead; a context manager
    that shuts down every kernel still running when it exits."""

    def __init__(self, notebooks: list[str | Path], cwd: str | Path, ahead: dict[str, str] | None = None):
        """``ahead``: more start-up code of a notebook's kernel (see :class:`StepKernel`), by notebook file name."""
        self.notebooks, self.cwd, self.ahead = [Path(n) for n in notebooks], cwd, ahead or {}
        self._started: dict[int, StepKernel] = {}  # by notebook index, until shut down

    def take(self, index: int) -> StepKernel:
        """The kernel of notebook ``index`` (started now if it was not yet); starts those of the next notebooks,
        and finishes the shutdown of those before the previous one (the previous one's shuts down as this one
        runs)."""
        for later in range(index, index + KERNELS_AHEAD + 1):
            if later < len(self.notebooks) and later not in self._started:
                notebook = self.notebooks[later]
                self._started[later] = StepKernel(notebook, self.cwd, self.ahead.get(notebook.name, ""))
        for earlier in [i for i in self._started if i < index - 1]:
            self._started.pop(earlier).close()
        return self._started[index]

    def close(self) -> None:
        while self._started:
            self._started.popitem()[1].close()

    def __enter__(self) -> KernelsAhead:
        return self

    def __exit__(self, *_) -> None:
        self.close()
