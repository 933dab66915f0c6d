"""The pipeline: the numbered notebooks run in order as papermill steps.

Each notebook ends by recording its outputs (a small JSON file named by its
``OUTPUTS_PATH`` parameter). The runner reads them, checks the step's gate, and
passes them on as the next steps' parameters. Each step's kernel starts, and imports what its notebook imports, while
the steps before it run (:mod:`utils.kernels`). Every executed notebook of a run is
kept in ``<work dir>/runs/<run id>/`` for inspection, with ``run.json`` summing up.

Command line::

    python -m utils.pipeline [--stage all|dev|preprod|prod] [--input CSV] [--duplicates keep|drop|fail]
        [--model-type gradient_boosting] [--model-id ID] [--approver NAME] [--retrain] [--work-dir DIR]

The stages and their gates are in :mod:`utils.stages`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from utils import config, datamart
from utils.choices import DUPLICATE_POLICIES
from utils.stages import RETRAINING_STAGES, STAGES, Step, steps_of

if TYPE_CHECKING:
    from utils.kernels import StepKernel


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


#: The default stage's steps (the workshop's story end to end).
STEPS: tuple[Step, ...] = STAGES["all"]

#: Where the closing summary tells the operator to serve the model (``python -m utils.serving --port 8000``).
SERVICE_URL = "http://127.0.0.1:8000"

DEFAULT_SETTINGS = {
    "input_csv": str(config.BUNDLED_DATA),
    "reference_csv": str(config.BUNDLED_DATA),
    "test_size": 0.2,
    "seed": 42,
    "duplicates": "keep",
    "model_type": "logistic_regression",
    "hyperparameters": {},
    "min_auc_roc": 0.80,
    "stage": "all",
    "model_id": "credit-risk-latest",
    "approver": "Workshop Validator",
    "retrain": False,
}


#: The libraries a notebook imports deep inside a call, a second or more each, as the project imports them (quietly):
#: the notebook's kernel imports them too as it starts, while the steps before run (see :mod:`utils.kernels`).
_DETECTORS_AND_SHAP = "\n".join(
    f"from utils.{module} import {loader}\n{loader}()\ndel {loader}"
    for module, loader in (("drift", "_alibi"), ("explain", "_shap"))
)
DEEP_IMPORTS = {
    "05_monitor_model.ipynb": _DETECTORS_AND_SHAP,  # the drift monitor, then an explained decision
    "07_evaluate_model.ipynb": _DETECTORS_AND_SHAP,  # the monitors, then the explained decisions of the report
    "06_batch_scoring.ipynb": "import distributed",  # the job on Dask
}


#: How long a step waits for its kernel to be ready, in seconds.
KERNEL_START_SECONDS = 600


def _new_run_dir(work: Path) -> Path:
    from utils.times import utc_now  # not at the top: it imports pandas, which the command line's --help does not need

    stamp = utc_now().strftime("%Y%m%d-%H%M%S")
    run_dir = config.WorkLayout(work).runs / f"{stamp}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    return run_dir


def _execute(step: Step, run_dir: Path, parameters: dict, progress_bar: bool, kernel: StepKernel) -> dict:
    """Run one step's notebook in ``kernel`` into the run folder; the outputs it recorded.

    Raises:
        PipelineStopped: the notebook raised.
    """
    import papermill  # imported here: it is slow to import and only the runner needs it

    from utils.kernels import KERNEL_NAME

    executed, outputs_path = run_dir / step.notebook, run_dir / f"{step.name}.json"
    try:
        papermill.execute_notebook(
            config.NOTEBOOKS_DIR / step.notebook,
            executed,
            parameters={**parameters, "OUTPUTS_PATH": str(outputs_path)},
            cwd=config.NOTEBOOKS_DIR,
            kernel_name=KERNEL_NAME,
            progress_bar=progress_bar,
            km=kernel.manager,
            # the kernel's start-up runs the notebook's imports: tens of seconds on a busy machine (a kernel that
            # dies is noticed at once, whatever this says)
            start_timeout=KERNEL_START_SECONDS,
        )
    except papermill.PapermillExecutionError as error:
        raise PipelineStopped(step.name, f"the notebook raised {error.ename}: {error.evalue}", executed) from None
    return json.loads(outputs_path.read_text())


def run_pipeline(
    settings: dict | None = None,
    *,
    work_dir: str | os.PathLike | None = None,
    steps: tuple[Step, ...] | None = None,
    log: Callable[[str], None] = print,
    progress_bar: bool = True,
) -> dict:
    """Run ``steps`` (default: those of the ``stage`` setting, with 09 after them under the ``retrain`` setting) in
    order; return the steps' outputs, merged.

    Raises:
        PipelineStopped: a gate stopped the run or a notebook raised; the message says
            which step and why, and ``run.json`` in the run folder records it too.
    """
    from utils.kernels import KernelsAhead  # not at the top: jupyter_client is slow to import, --help needs none

    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    for key in ("input_csv", "reference_csv"):
        settings[key] = str(Path(settings[key]).expanduser().resolve())
    work = config.work_dir(work_dir)
    settings["work_dir"] = str(work)
    steps = steps_of(settings["stage"], retrain=settings["retrain"]) if steps is None else steps
    run_dir = _new_run_dir(work)
    summary: dict = {"run_dir": str(run_dir), "settings": settings, "steps": {}, "status": "running"}
    outputs: dict = {}
    log(f"run folder: {run_dir}")
    notebooks = [config.NOTEBOOKS_DIR / step.notebook for step in steps]
    kernels = KernelsAhead(notebooks, config.NOTEBOOKS_DIR, DEEP_IMPORTS)
    try:
        for number, step in enumerate(steps, start=1):
            refused = step.check(settings, outputs)
            if refused:
                raise PipelineStopped(step.name, refused, config.NOTEBOOKS_DIR / step.notebook)
            parameters = {**step.parameters(settings, outputs), "WORK_DIR": str(work)}
            log(f"[{number}/{len(steps)}] {step.name} ...")
            started = time.perf_counter()
            kernel = kernels.take(number - 1)  # the next step's kernel starts and imports while this step runs
            try:
                step_outputs = _execute(step, run_dir, parameters, progress_bar, kernel)
            finally:
                kernel.request_shutdown()
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
        kernels.close()
        (run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str))


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--stage",
        choices=tuple(STAGES),
        default=DEFAULT_SETTINGS["stage"],
        help="dev: 01-04 into dev; preprod: 01-04 into preprod and the evaluation 07; prod: promote an approved "
        "version (08), monitor it (05), batch (06); all (default): the whole story, with a stand-in approval",
    )
    parser.add_argument(
        "--model-id", default=DEFAULT_SETTINGS["model_id"], help="the version the prod stage promotes (it trains none)"
    )
    parser.add_argument(
        "--approver",
        default=DEFAULT_SETTINGS["approver"],
        help="who approves in the all stage, and the retrained candidate with --retrain (a stand-in)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="prod and all stages: then retrain on the prod deployment's drift alerts (09), approve the candidate "
        "under --approver, promote it and monitor the next windows",
    )
    parser.add_argument(
        "--work-dir",
        default=None,
        help=config.WORK_DIR_HELP,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        hyperparameters = json.loads(args.hyperparameters)
    except json.JSONDecodeError as error:
        parser.error(f"--hyperparameters is not valid JSON: {error}")
    if args.retrain and args.stage not in RETRAINING_STAGES:
        parser.error(f"--retrain follows a prod deployment: use it with --stage {' or '.join(RETRAINING_STAGES)}")
    settings = {
        "input_csv": args.input,
        "reference_csv": args.reference,
        "model_type": args.model_type,
        "hyperparameters": hyperparameters,
        "min_auc_roc": args.min_auc_roc,
        "seed": args.seed,
        "duplicates": args.duplicates,
        "stage": args.stage,
        "model_id": args.model_id,
        "approver": args.approver,
        "retrain": args.retrain,
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
    _print_summary(outputs, config.work_dir(args.work_dir), args.stage)
    return 0


def _print_summary(outputs: dict, work: Path, stage: str) -> None:
    """What the stage did, each deployment named where a gate concerns it."""
    print(f"\npipeline completed ({stage} stage); working directory {work}")
    if "auc_roc" in outputs:
        print(
            f"model {outputs['model_id']} trained: test ROC AUC {outputs['auc_roc']:.3f}; factsheet "
            f"{outputs['factsheet_path']}"
        )
    if "verdict" in outputs:
        print(
            f"pre-production evaluation of {outputs['evaluated_model_id']} (deployment "
            f"{outputs['preprod_deployment_id']}) against {outputs['baseline_model_id']}: {outputs['verdict']}"
        )
    where = f"{outputs.get('space')} deployment {outputs.get('deployment_id')}"  # 04 and 08 record the space
    if outputs.get("space") == "prod":
        print(f"{outputs['model_id']} approved and promoted: the {where} serves it")
    elif "deployment_id" in outputs:
        print(f"{outputs['model_id']} deployed: the {where}")
    if "quality_ok" in outputs:
        gates = ", ".join(f"{name}={outputs[name]}" for name in ("quality_ok", "fairness_ok", "drift_detected"))
        print(
            f"monitoring of the {where} over the simulated week: {gates}; reports in {config.WorkLayout(work).reports}"
        )
        print(f"  the week's measurements and alerts on the dashboard: {outputs['dashboard_url']}")
    if "rows_scored" in outputs:
        print(
            f"batch job with the {where}: {outputs['rows_scored']} rows scored, {outputs['rows_rejected']} "
            f"rejected -> {outputs['output_path']}"
        )
    if "candidate_model_id" in outputs:
        _print_retraining(outputs)
    print(f"serve it: python -m utils.serving --port {urlsplit(SERVICE_URL).port} --work-dir {work}")
    print(f"and open its dashboard at {config.dashboard_url(SERVICE_URL)}")


if __name__ == "__main__":
    sys.exit(main())


def _print_retraining(outputs: dict) -> None:
    """What 09 did: the alert, the candidate and its evaluation, the decision, and the windows after promotion."""
    print(
        f"retraining: {outputs['alerts_notified']} drift or quality alerts notified; {outputs['candidate_model_id']} "
        f"retrained from {outputs['parent_model_id']} ({outputs['production_rows']} production records among "
        f"{outputs['training_rows']} rows), its evaluation against the champion: {outputs['candidate_verdict']}"
    )
    low, high = outputs["auc_gain_interval"]
    print(
        f"  ROC AUC on {outputs['drifted_records']} held-out drifted records: candidate "
        f"{outputs['candidate_auc_drifted']:.3f}, champion {outputs['champion_auc_drifted']:.3f} (95% interval of the "
        f"gain {low:+.3f} to {high:+.3f})"
    )
    print(
        f"  approved by {outputs['approver']} and promoted: {outputs['promoted_model_id']} serves prod; "
        f"{outputs['alerts_after_promotion']} alerts in the windows after the promotion, "
        f"{outputs['recoveries_notified']} recoveries notified"
    )
