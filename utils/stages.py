"""The pipeline's stages: which notebooks run, with which parameters, and the gates between them.

The same notebooks serve every stage, as in the original MLOps flow; a stage never retrains what an earlier stage
validated:

- ``dev``: 01 → 04, the model trained and deployed into ``dev``;
- ``preprod``: 01 → 04 into ``preprod``, then 07, the risk evaluation, whose verdict is a gate;
- ``prod``: "Checks for Model Production" as a gate, 08 promoting the approved version (no decision recorded), 05
  monitoring that very prod deployment, 06 scoring a file with it;
- ``all`` (the default, the workshop's story end to end): 01 → 04 into ``dev``, 07 in ``preprod`` against a
  challenger, 08 recording an approval under the ``approver`` setting (standing in for a model validator) and
  promoting, then 05 and 06 on the prod deployment.

With the ``retrain`` setting, ``prod`` and ``all`` close the loop with 09 (:func:`steps_of`): drifted prod traffic
raises an alert that is notified, the model is retrained on the alerting windows and evaluated against the
champion, approved under the ``approver`` setting, promoted, and the next windows are monitored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from utils.choices import PRODUCTION

#: The deployment name every stage uses.
DEPLOYMENT_NAME = "credit-risk"


@dataclass(frozen=True)
class Step:
    """One notebook of a stage.

    ``parameters`` builds the notebook's parameters from the run's settings and the outputs of the steps before
    it; ``check`` returns why the pipeline must not run this step (before it runs), ``gate`` why it must stop after
    it; either returns ``None`` to go on.
    """

    notebook: str
    parameters: Callable[[dict, dict], dict]
    gate: Callable[[dict, dict], str | None] = lambda settings, outputs: None
    check: Callable[[dict, dict], str | None] = lambda settings, outputs: None

    @property
    def name(self) -> str:
        return Path(self.notebook).stem


def _validation_gate(settings: dict, outputs: dict) -> str | None:
    if outputs["anomaly_status"] == "none":
        return None
    return f"{outputs['anomaly_count']} anomalies found in {settings['input_csv']}: {outputs['anomaly_summary']}"


def _quality_gate(settings: dict, outputs: dict) -> str | None:
    if outputs["training_done"]:
        return None
    return f"test ROC AUC {outputs['auc_roc']:.3f} is under the minimum {settings['min_auc_roc']:.3f}"


def _evaluation_gate(settings: dict, outputs: dict) -> str | None:
    if outputs["verdict"] == "passed":
        return None
    return f"the pre-production evaluation of {outputs['evaluated_model_id']} failed (see its model-risk report)"


def _production_check(settings: dict, outputs: dict) -> str | None:
    """ "Checks for Model Production" on the version the stage would promote."""
    from utils.deployment import production_problem  # not at the top: the pipeline's --help stays light

    return production_problem(_model(settings, outputs), work=settings.get("work_dir"))


def _model(settings: dict, outputs: dict) -> str:
    """The version a step works on: the one trained in this run, else the ``model_id`` setting."""
    return outputs.get("model_id") or settings["model_id"]


VALIDATE = Step(
    "01_validate_data.ipynb",
    lambda s, o: {
        "INPUT_CSV": s["input_csv"],
        "REFERENCE_CSV": s["reference_csv"],
        "TEST_SIZE": s["test_size"],
        "SEED": s["seed"],
        "DUPLICATES": s["duplicates"],
    },
    _validation_gate,
)
PREPARE = Step("02_prepare_features.ipynb", lambda s, o: {"TRAIN_PATH": o["train_path"], "TEST_PATH": o["test_path"]})
TRAIN = Step(
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
)


def _deploy(space: str) -> Step:
    return Step(
        "04_deploy_model.ipynb",
        lambda s, o: {"MODEL_ID": _model(s, o), "DEPLOYMENT_NAME": DEPLOYMENT_NAME, "SPACE": space},
    )


EVALUATE = Step(
    "07_evaluate_model.ipynb",
    lambda s, o: {"MODEL_ID": _model(s, o), "DEPLOYMENT_NAME": DEPLOYMENT_NAME, "SEED": s["seed"]},
    _evaluation_gate,
)


def _promote(decide: bool) -> Step:
    """08: with ``decide``, the ``approver`` setting records an approval first; without, an approval must exist."""
    return Step(
        "08_promote_model.ipynb",
        lambda s, o: {
            "MODEL_ID": _model(s, o),
            "APPROVER": s["approver"],
            "DECISION": "approved" if decide else None,
            "TO_SPACE": PRODUCTION,
        },
        check=lambda s, o: None if decide else _production_check(s, o),
    )


MONITOR_PROD = Step(
    "05_monitor_model.ipynb",
    lambda s, o: {
        "MODEL_ID": _model(s, o),
        "DEPLOYMENT_NAME": DEPLOYMENT_NAME,
        "SPACE": PRODUCTION,
        "APPLICANTS_PATH": o.get("test_path"),
    },
)
BATCH_PROD = Step("06_batch_scoring.ipynb", lambda s, o: {"DEPLOYMENT_ID": o["deployment_id"]})

RETRAIN = Step(
    "09_retrain_model.ipynb",
    lambda s, o: {
        "DEPLOYMENT_NAME": DEPLOYMENT_NAME,
        "APPLICANTS_PATH": o.get("test_path"),
        "APPROVER": s["approver"],
        "DECISION": "approved",
        "SEED": s["seed"],
    },
)

STAGES: dict[str, tuple[Step, ...]] = {
    "dev": (VALIDATE, PREPARE, TRAIN, _deploy("dev")),
    "preprod": (VALIDATE, PREPARE, TRAIN, _deploy("preprod"), EVALUATE),
    "prod": (_promote(decide=False), MONITOR_PROD, BATCH_PROD),
    "all": (VALIDATE, PREPARE, TRAIN, _deploy("dev"), EVALUATE, _promote(decide=True), MONITOR_PROD, BATCH_PROD),
}

#: The stages that end with a prod deployment, which the ``retrain`` setting can close the loop on.
RETRAINING_STAGES = ("prod", "all")


def steps_of(stage: str, *, retrain: bool = False) -> tuple[Step, ...]:
    """The steps of ``stage``; with ``retrain``, followed by 09 (retraining on the prod deployment's alerts)."""
    if retrain and stage not in RETRAINING_STAGES:
        stages = " or ".join(RETRAINING_STAGES)
        raise ValueError(f"retraining follows a prod deployment: the {stages} stage, not {stage}")
    return STAGES[stage] + ((RETRAIN,) if retrain else ())
