"""Session set-up shared by the unit, pipeline and notebook (nbval) tests."""

import os
import shutil
import tempfile

from utils.config import WORK_DIR_ENV

_session_work_dir: str | None = None


def pytest_configure(config):
    """Send every generated artifact to a fresh temporary working directory.

    Notebook kernels started by nbval inherit this environment, so the committed
    notebooks run exactly as in a fresh checkout and never write into the repository.
    """
    global _session_work_dir
    _session_work_dir = tempfile.mkdtemp(prefix="credit-workshop-tests-")
    os.environ[WORK_DIR_ENV] = _session_work_dir
    import matplotlib.pyplot  # noqa: F401  (builds the font cache outside any notebook)


def pytest_unconfigure(config):
    if _session_work_dir:
        shutil.rmtree(_session_work_dir, ignore_errors=True)
