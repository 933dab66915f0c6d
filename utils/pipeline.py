"""The pipeline: the numbered notebooks run in order as papermill steps.

Each notebook ends by recording its outputs (a small JSON file named by its
``OUTPUTS_PATH`` parameter). The runner reads them, checks the step's gate, and
passes them on as the next steps' parameters. Every executed notebook of a run is
kept in ``<work dir>/runs/<run id>/`` for inspection, with ``run.json`` summing up.

Command line::

    python -m utils.pipeline [--input CSV] [--duplicates keep|drop|fail] [--model-type gradient_boosting]
        [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from utils import config, datamart
from utils.times import utc_now


@dataclass(frozen=True)
class Step:
    """One notebook of the pipeline.

    ``parameters`` builds the notebook's parameters from the run's settings and the
    outputs of the steps before it; ``gate`` returns why the pipeline must stop
    after this step, or ``None`` to go on.
    """

    notebook: str
    parameters: Callable[[dict, dict], dict]
    gate: Callable[[dict, dict], str | None] = lambda settings, outputs: None

    @property
    def name(self) -> str:
        return Path(self.notebook).stem


class PipelineStopped(RuntimeError):
    """A gate stopped the run, or a step failed."""

    def __init__(self, step: str, reason: str, notebook: Path):
        super().__init__(f"pipeline stopped at {step}: {reason} (executed notebook: {notebook})")
        self.step = step
        self.reason = reason
        self.notebook = notebook


def _json_value(value):
    """numpy scalars as their Python value (a text "False" would pass a gate), anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)


def record_outputs(outputs: dict, path: str | os.PathLike | None) -> dict:
    """Write a step's outputs where the pipeline runner reads them (nothing when ``path`` is None).

    Returns ``outputs`` so that the notebook's last cell also shows them.
    """
    if path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(outputs, indent=2, default=_json_value))
        tmp.replace(path)
    return outputs


def _validation_gate(settings: dict, outputs: dict) -> str | None:
    if outputs["anomaly_status"] == "none":
        return None
    return f"{outputs['anomaly_count']} anomalies found in {settings['input_csv']}: {outputs['anomaly_summary']}"


def _quality_gate(settings: dict, outputs: dict) -> str | None:
    if outputs["training_done"]:
        return None
    return f"test ROC AUC {outputs['auc_roc']:.3f} is under the minimum {settings['min_auc_roc']:.3f}"


STEPS: tuple[Step, ...] = (
    Step(
        "01_validate_data.ipynb",
        lambda s, o: {
            "INPUT_CSV": s["input_csv"],
            "REFERENCE_CSV": s["reference_csv"],
            "TEST_SIZE": s["test_size"],
            "SEED": s["seed"],
            "DUPLICATES": s["duplicates"],
        },
        _validation_gate,
    ),
    Step(
        "02_prepare_features.ipynb",
        lambda s, o: {"TRAIN_PATH": o["train_path"], "TEST_PATH": o["test_path"]},
    ),
    Step(
        "03_train_model.ipynb",
        lambda s, o: {
            "TRAIN_PATH": o["train_path"],
            "TEST_PATH": o["test_path"],
            "PREPROCESSOR_PATH": o["preprocessor_path"],
            "SCHEMA_PATH": o["schema_path"],
            "MODEL_TYPE": s["model_type"],
            "HYPERPARAMETERS": s["hyperparameters"],
            "SEED": s["seed"],
            "MIN_AUC_ROC": s["min_auc_roc"],
        },
        _quality_gate,
    ),
    Step(
        "04_deploy_model.ipynb",
        lambda s, o: {"MODEL_ID": o["model_id"], "DEPLOYMENT_NAME": s["deployment_name"], "SPACE": s["space"]},
    ),
    Step(
        "05_monitor_model.ipynb",
        lambda s, o: {"MODEL_ID": o["model_id"], "SPACE": s["space"], "APPLICANTS_PATH": o["test_path"]},
    ),
    Step("06_batch_scoring.ipynb", lambda s, o: {"DEPLOYMENT_ID": o["deployment_id"]}),
)

DEFAULT_SETTINGS = {
    "input_csv": str(config.BUNDLED_DATA),
    "reference_csv": str(config.BUNDLED_DATA),
    "test_size": 0.2,
    "seed": 42,
    "duplicates": "keep",
    "model_type": "logistic_regression",
    "hyperparameters": {},
    "min_auc_roc": 0.80,
    "deployment_name": "credit-risk",
    "space": "dev",
}


def _new_run_dir(work: Path) -> Path:
    stamp = utc_now().strftime("%Y%m%d-%H%M%S")
    run_dir = config.WorkLayout(work).runs / f"{stamp}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    return run_dir


def _execute(step: Step, run_dir: Path, parameters: dict, progress_bar: bool) -> dict:
    """Run one step's notebook into the run folder; the outputs it recorded.

    Raises:
        PipelineStopped: the notebook raised.
    """
    import papermill  # imported here: it is slow to import and only the runner needs it
    from traitlets.config import Config

    executed, outputs_path = run_dir / step.notebook, run_dir / f"{step.name}.json"
    try:
        # IPC sockets: a local kernel needs no TCP ports (and ipykernel warns about unencrypted TCP); in a folder
        # of their own, since by default they are named "kernel-ipc-N" in the notebooks' folder, shared by runs
        with tempfile.TemporaryDirectory(prefix="kernel-") as sockets:
            papermill.execute_notebook(
                config.NOTEBOOKS_DIR / step.notebook,
                executed,
                parameters={**parameters, "OUTPUTS_PATH": str(outputs_path)},
                cwd=config.NOTEBOOKS_DIR,
                kernel_name="python3",
                progress_bar=progress_bar,
                config=Config(KernelManager={"transport": "ipc", "ip": os.path.join(sockets, "ipc")}),
            )
    except papermill.PapermillExecutionError as error:
        raise PipelineStopped(step.name, f"the notebook raised {error.ename}: {error.evalue}", executed) from None
    return json.loads(outputs_path.read_text())


def run_pipeline(
    settings: dict | None = None,
    *,
    work_dir: str | os.PathLike | None = None,
    steps: tuple[Step, ...] = STEPS,
    log: Callable[[str], None] = print,
    progress_bar: bool = True,
) -> dict:
    """Run ``steps`` in order; return every step's outputs keyed by step name.

    Raises:
        PipelineStopped: a gate stopped the run or a notebook raised; the message says
            which step and why, and ``run.json`` in the run folder records it too.
    """
    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    for key in ("input_csv", "reference_csv"):
        settings[key] = str(Path(settings[key]).expanduser().resolve())
    work = config.work_dir(work_dir)
    run_dir = _new_run_dir(work)
    summary: dict = {"run_dir": str(run_dir), "settings": settings, "steps": {}, "status": "running"}
    outputs: dict = {}
    log(f"run folder: {run_dir}")
    try:
        for number, step in enumerate(steps, start=1):
            parameters = {**step.parameters(settings, outputs), "WORK_DIR": str(work)}
            log(f"[{number}/{len(steps)}] {step.name} ...")
            started = time.perf_counter()
            step_outputs = _execute(step, run_dir, parameters, progress_bar)
            elapsed = time.perf_counter() - started
            summary["steps"][step.name] = {"seconds": round(elapsed, 1), "outputs": step_outputs}
            outputs |= step_outputs
            log(f"[{number}/{len(steps)}] {step.name} done in {elapsed:.1f} s")
            reason = step.gate(settings, step_outputs)
            if reason:
                raise PipelineStopped(step.name, reason, run_dir / step.notebook)
        summary["status"] = "completed"
        return outputs
    except PipelineStopped as stop:
        summary |= {"status": "stopped", "stopped_at": stop.step, "reason": stop.reason}
        raise
    finally:
        (run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    from utils.validation import DUPLICATE_POLICIES  # imported here: pandera is slow to import for the notebooks

    parser = argparse.ArgumentParser(description="Run the workshop notebooks as a pipeline.")
    parser.add_argument("--input", default=DEFAULT_SETTINGS["input_csv"], help="CSV to validate and train on")
    parser.add_argument(
        "--reference", default=DEFAULT_SETTINGS["reference_csv"], help="CSV the data schema is inferred from"
    )
    parser.add_argument(
        "--model-type", default=DEFAULT_SETTINGS["model_type"], help="logistic_regression or gradient_boosting"
    )
    parser.add_argument("--hyperparameters", default="{}", help="JSON object, e.g. '{\"C\": 0.5}'")
    parser.add_argument("--min-auc-roc", type=float, default=DEFAULT_SETTINGS["min_auc_roc"])
    parser.add_argument("--seed", type=int, default=DEFAULT_SETTINGS["seed"])
    parser.add_argument(
        "--duplicates",
        choices=DUPLICATE_POLICIES,
        default=DEFAULT_SETTINGS["duplicates"],
        help="exact duplicate rows in the input: keep them (with a warning), drop the extra copies, or fail",
    )
    parser.add_argument("--space", default=DEFAULT_SETTINGS["space"], help="deployment space: dev, preprod or prod")
    parser.add_argument(
        "--work-dir",
        default=None,
        help=config.WORK_DIR_HELP,
    )
    args = parser.parse_args(argv)
    try:
        hyperparameters = json.loads(args.hyperparameters)
    except json.JSONDecodeError as error:
        parser.error(f"--hyperparameters is not valid JSON: {error}")
    settings = {
        "input_csv": args.input,
        "reference_csv": args.reference,
        "model_type": args.model_type,
        "hyperparameters": hyperparameters,
        "min_auc_roc": args.min_auc_roc,
        "seed": args.seed,
        "duplicates": args.duplicates,
        "space": args.space,
    }
    try:
        datamart.connect(work=args.work_dir)  # migrates an older data mart; refuses a newer one before any step
        outputs = run_pipeline(settings, work_dir=args.work_dir)
    except datamart.SchemaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PipelineStopped as stop:
        print(f"\n{stop}", file=sys.stderr)
        return 1
    _print_summary(outputs, config.work_dir(args.work_dir), args.space)
    return 0


def _print_summary(outputs: dict, work: Path, space: str) -> None:
    print(f"\npipeline completed: model {outputs['model_id']} (test ROC AUC {outputs['auc_roc']:.3f})")
    print(f"model factsheet: {outputs['factsheet_path']} (in the working directory {work})")
    print(f"deployed in space {space} as {outputs['deployment_id']}; serve it with")
    print(f"  python -m utils.serving --port 8000 --work-dir {work}")
    gates = ", ".join(f"{name}={outputs[name]}" for name in ("quality_ok", "fairness_ok", "drift_detected"))
    print(f"monitoring of the simulated week: {gates}; reports in {config.WorkLayout(work).reports}")
    scored, rejected = outputs["rows_scored"], outputs["rows_rejected"]
    print(f"batch job: {scored} rows scored, {rejected} rejected -> {outputs['output_path']}")


if __name__ == "__main__":
    sys.exit(main())
