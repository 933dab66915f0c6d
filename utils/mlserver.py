"""A second serving engine: Seldon's MLServer with its scikit-learn runtime, in a process (and environment) of its own.

MLServer 1.7 pins a FastAPI older than the service's, so it lives in its own virtual environment,
``.venv-mlserver`` at the project root, made by ``./workshop mlserver`` from ``requirements-mlserver.lock`` (whose
scikit-learn, numpy, pandas, scipy and joblib are the main lock's, so that a model saved here loads there);
``$CREDIT_MLSERVER_VENV`` names another. :func:`start_mlserver` writes each model as MLServer expects it
(``<folder>/<name>/model.joblib`` and ``model-settings.json``; joblib is a pickle, so the folder holds only models
this process saved), starts ``mlserver start`` on 127.0.0.1 with free ports, and waits until every model is
ready. Its Open Inference Protocol endpoint is ``<url>/v2/models/<name>/infer``; a request with
``parameters.content_type: pd`` is read as a DataFrame, and the output ``predict_proba`` holds the probabilities
in the order of the model's ``classes_``.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import joblib

from utils import config
from utils.deployment import is_valid_name
from utils.serving.server import ServerHandle, free_port, wait_until_ready

#: The environment variable naming MLServer's virtual environment, and its default.
MLSERVER_VENV_ENV = "CREDIT_MLSERVER_VENV"
DEFAULT_VENV = config.PROJECT_ROOT / ".venv-mlserver"
#: Seconds MLServer has to start and load its models (its imports take a while on a busy machine).
START_SECONDS = 180.0


class EngineUnavailable(RuntimeError):
    """MLServer's environment is not installed, or the engine did not start."""


def mlserver_executable() -> Path:
    """The ``mlserver`` command of MLServer's environment.

    Raises:
        EngineUnavailable: the environment is not installed (with the command that installs it).
    """
    venv = Path(os.environ.get(MLSERVER_VENV_ENV) or DEFAULT_VENV)
    executable = venv / "bin" / "mlserver"
    if not executable.is_file():
        raise EngineUnavailable(
            f"MLServer is not installed in {venv}: run './workshop mlserver' at the project root "
            f"(or set ${MLSERVER_VENV_ENV} to an environment made from requirements-mlserver.lock)"
        )
    return executable


def write_model_repository(models: Mapping[str, object], folder: Path, *, ports: Mapping[str, int]) -> Path:
    """Write ``models`` (name to fitted scikit-learn estimator) and the server's settings into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        if not is_valid_name(name):
            raise ValueError(f"model name {name!r}: 1 to 100 ASCII letters, digits, '-', '_' and '.'")
        model_folder = folder / name
        model_folder.mkdir(exist_ok=True)
        joblib.dump(model, model_folder / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        }
        (model_folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    server = {
        "host": "127.0.0.1",
        "http_port": ports["http"],
        "grpc_port": ports["grpc"],
        "metrics_port": ports["metrics"],
        "parallel_workers": 0,  # inference in the server process: one process, no worker pool
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(server, indent=2))
    return folder


class EngineHandle(ServerHandle):
    """A running MLServer: its base URL, process and log file; ``stop()`` ends it (also on interpreter exit)."""

    def infer_url(self, name: str) -> str:
        """The Open Inference Protocol ``infer`` URL of model ``name``."""
        return f"{self.url}/v2/models/{name}/infer"


def start_mlserver(
    models: Mapping[str, object], *, work: str | os.PathLike | None = None, timeout: float = START_SECONDS
) -> EngineHandle:
    """Serve ``models`` (name to fitted estimator) with MLServer in a new process on 127.0.0.1 and wait until
    they are ready. The model repository is ``<work dir>/mlserver/``; the log ``<work dir>/logs/mlserver.log``.

    Raises:
        EngineUnavailable: MLServer is not installed, or did not get ready within ``timeout`` seconds.
    """
    executable = mlserver_executable()
    layout = config.layout(work)
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    folder = write_model_repository(models, layout.root / "mlserver", ports=ports)
    log_path = layout.logs / "mlserver.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(executable), "start", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
        )
    handle = EngineHandle(f"http://127.0.0.1:{ports['http']}", process, log_path)
    atexit.register(handle.stop)
    try:
        wait_until_ready(handle.url, timeout, process)
    except (RuntimeError, TimeoutError) as error:
        handle.stop()
        raise EngineUnavailable(
            f"MLServer did not start: {error}\n--- {log_path} ---\n{handle.log()[-3000:]}"
        ) from None
    return handle
