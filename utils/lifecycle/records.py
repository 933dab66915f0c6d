"""Risk evaluations of a deployed model version, and the approval decisions a model validator makes on them.

An evaluation is recorded once, by the run that evaluated a deployment's model (optionally against a baseline, a
challenger or the champion); its reports are written to ``reports/evaluations/<evaluation id>.html`` and ``.json``
in the working directory, paths derived from the id and never from user input. A decision (``approved`` or
``rejected``) concerns one evaluation of one model version and is never changed or deleted: a newer decision on the
same evaluation supersedes it. Only an evaluation run in ``preprod`` can be decided on, and only a passed one
approved. Who decides is named by :data:`~utils.deployment.PERSON_RULE`; a reason is required.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from utils import config, datamart
from utils.deployment import (
    APPROVED,
    FAILED,
    PASSED,
    PREPRODUCTION,
    REJECTED,
    DeploymentError,
    check_person,
    get_deployment,
)
from utils.registry import ModelRegistry, registry_for

VERDICTS: tuple[str, ...] = (PASSED, FAILED)
DECISIONS: tuple[str, ...] = (APPROVED, REJECTED)
#: Longest reason of a decision, in characters.
MAX_REASON_LENGTH = 2000
#: An evaluation id: a UUID in its canonical text form, as evaluations are named (see ``_check_evaluation_id``).
EVALUATION_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
#: Where an evaluation's reports go, relative to the working directory's reports folder.
EVALUATION_REPORTS = "evaluations"


class LifecycleError(ValueError):
    """A lifecycle request that cannot be carried out: bad input, or a record that does not exist or does not fit.

    ``field`` names the argument at fault when there is one; ``missing`` is True when a record it names does not
    exist (an unknown evaluation or deployment).
    """

    def __init__(self, message: str, *, field: str | None = None, missing: bool = False):
        super().__init__(message)
        self.field = field
        self.missing = missing


@dataclass(frozen=True)
class EvaluationRecord:
    """One recorded evaluation. ``report_html`` and ``report_json`` are relative to the working directory."""

    evaluation_id: str
    model_id: str
    deployment_id: str
    space: str
    baseline_model_id: str | None
    verdict: str
    summary: dict
    report_html: str
    report_json: str
    created_at: datetime

    def report_paths(self, work: str | os.PathLike | None = None) -> tuple[Path, Path]:
        """The HTML and JSON report files in the working directory ``work``."""
        layout = config.layout(work)
        return layout.resolve(self.report_html), layout.resolve(self.report_json)

    def as_dict(self) -> dict:
        """The record as JSON-able values (times in ISO 8601, UTC)."""
        return {**asdict(self), "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class ApprovalRecord:
    """One decision on an evaluation; ``superseded`` when a newer decision on the same evaluation exists."""

    approval_id: str
    model_id: str
    evaluation_id: str
    approver: str
    decision: str
    reason: str
    created_at: datetime
    superseded: bool = field(default=False)

    def as_dict(self) -> dict:
        """The record as JSON-able values (times in ISO 8601, UTC)."""
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def _of(cls, row: dict):
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def _engine(engine: Engine | None, work) -> Engine:
    return engine or datamart.connect(work=work)


def _check_evaluation_id(evaluation_id: object) -> str:
    """An evaluation id is a UUID in its canonical text form (it names the report files)."""
    try:
        if isinstance(evaluation_id, str) and str(uuid.UUID(evaluation_id)) == evaluation_id:
            return evaluation_id
    except ValueError:
        pass
    raise LifecycleError(
        f"invalid evaluation id {str(evaluation_id)[:60]!r}: expected a UUID such as {uuid.UUID(int=0)}",
        field="evaluation_id",
    )


def _json_summary(summary: object) -> dict:
    if not isinstance(summary, dict):
        raise LifecycleError(
            f"an evaluation summary is a JSON object (dict), got {type(summary).__name__}", field="summary"
        )
    try:
        return json.loads(json.dumps(summary, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise LifecycleError(
            f"the evaluation summary is not JSON without NaN or infinity: {error}", field="summary"
        ) from None


def report_paths(evaluation_id: str) -> tuple[str, str]:
    """The HTML and JSON report paths of an evaluation, relative to the working directory (as its layout says)."""
    stem = config.WorkLayout(Path()).reports / EVALUATION_REPORTS / _check_evaluation_id(evaluation_id)
    return stem.with_suffix(".html").as_posix(), stem.with_suffix(".json").as_posix()


def record_evaluation(
    deployment_id: str,
    *,
    verdict: str,
    summary: dict,
    baseline_model_id: str | None = None,
    evaluation_id: str | None = None,
    engine: Engine | None = None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
) -> EvaluationRecord:
    """Record an evaluation of the model that deployment ``deployment_id`` serves now, in its space.

    ``summary`` is a JSON object (the figures and checks behind the verdict); ``evaluation_id`` is the id the run
    stored its measurements under (a new one by default). Write the reports to :meth:`EvaluationRecord.report_paths`.
    The version's factsheet is regenerated.

    Raises:
        LifecycleError: unknown deployment, bad verdict, summary or id, or a baseline not in the registry.
    """
    if verdict not in VERDICTS:
        raise LifecycleError(f"unknown verdict {verdict!r}; an evaluation is {' or '.join(VERDICTS)}", field="verdict")
    engine, registry = _engine(engine, work), registry or registry_for(work)
    try:
        deployment = get_deployment(deployment_id, engine=engine)
    except DeploymentError as error:
        raise LifecycleError(str(error), field="deployment_id", missing=True) from None
    if baseline_model_id is not None:
        try:
            baseline_model_id = registry.get(baseline_model_id).model_id
        except Exception as error:  # RegistryError or a malformed id: say which baseline
            raise LifecycleError(f"baseline: {error}", field="baseline_model_id") from None
    evaluation_id = datamart.new_id() if evaluation_id is None else _check_evaluation_id(evaluation_id)
    html, as_json = report_paths(evaluation_id)
    row = datamart.insert_evaluation(
        engine,
        {
            "evaluation_id": evaluation_id,
            "model_id": deployment.model_id,
            "deployment_id": deployment.deployment_id,
            "space": deployment.space,
            "baseline_model_id": baseline_model_id,
            "verdict": verdict,
            "summary": _json_summary(summary),
            "report_html": html,
            "report_json": as_json,
        },
    )
    registry.write_factsheet(deployment.model_id, engine=engine)
    return _of(EvaluationRecord, row)


def get_evaluation(
    evaluation_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> EvaluationRecord:
    """The evaluation ``evaluation_id``.

    Raises:
        LifecycleError: no such evaluation, or an id that can name none (no UUID).
    """
    row = datamart.read_evaluation(_engine(engine, work), _check_evaluation_id(evaluation_id))
    if row is None:
        raise LifecycleError(f"no evaluation with id {str(evaluation_id)[:60]!r}", field="evaluation_id", missing=True)
    return _of(EvaluationRecord, row)


def list_evaluations(
    *,
    model_id: str | None = None,
    deployment_id: str | None = None,
    space: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> list[EvaluationRecord]:
    """Evaluations, oldest first: of a model version, a deployment and/or a space."""
    rows = datamart.read_evaluations(_engine(engine, work), model_id=model_id, deployment_id=deployment_id, space=space)
    return [_of(EvaluationRecord, row) for row in rows]


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise LifecycleError("a decision needs a reason: say why the version is approved or rejected", field="reason")
    if len(reason) > MAX_REASON_LENGTH or any(ord(c) < 32 and c not in "\n\t" for c in reason):
        raise LifecycleError(
            f"a reason has at most {MAX_REASON_LENGTH} characters and no control characters", field="reason"
        )
    return reason.strip()


def _check_decidable(evaluation: EvaluationRecord, model_id: str, decision: str) -> None:
    about = f"evaluation {evaluation.evaluation_id!r}"
    if evaluation.model_id != model_id:
        raise LifecycleError(f"{about} is of model {evaluation.model_id!r}, not {model_id!r}", field="model_id")
    if evaluation.space != PREPRODUCTION:
        raise LifecycleError(
            f"{about} was run in {evaluation.space}; only {PREPRODUCTION} evaluations are decided on",
            field="evaluation_id",
        )
    if decision == APPROVED and evaluation.verdict != PASSED:
        raise LifecycleError(
            f"{about} {evaluation.verdict}; only a passed evaluation can be approved (reject it)", field="decision"
        )


def decide(
    model_id: str,
    evaluation_id: str,
    *,
    decision: str,
    approver: str,
    reason: str,
    engine: Engine | None = None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
) -> ApprovalRecord:
    """Record ``approver``'s ``decision`` (approved or rejected) on evaluation ``evaluation_id`` of ``model_id``;
    the version's factsheet is regenerated.

    Raises:
        LifecycleError: unknown decision or evaluation, an evaluation of another version or space, approving a
            failed evaluation, a missing reason, or an approver name that breaks ``PERSON_RULE``.
    """
    if decision not in DECISIONS:
        raise LifecycleError(f"unknown decision {decision!r}; choose {' or '.join(DECISIONS)}", field="decision")
    try:
        check_person(approver, "approver")
    except DeploymentError as error:
        raise LifecycleError(str(error), field="approver") from None
    reason = _check_reason(reason)
    engine = _engine(engine, work)
    _check_decidable(get_evaluation(evaluation_id, engine=engine), model_id, decision)
    row = datamart.insert_approval(
        engine,
        {
            "approval_id": datamart.new_id(),
            "model_id": model_id,
            "evaluation_id": evaluation_id,
            "approver": approver,
            "decision": decision,
            "reason": reason,
        },
    )
    (registry or registry_for(work)).write_factsheet(model_id, engine=engine)
    return _of(ApprovalRecord, row)


def approve(model_id: str, evaluation_id: str, *, approver: str, reason: str, **where) -> ApprovalRecord:
    """Approve a passed pre-prod evaluation of ``model_id`` (see :func:`decide`)."""
    return decide(model_id, evaluation_id, decision=APPROVED, approver=approver, reason=reason, **where)


def reject(model_id: str, evaluation_id: str, *, approver: str, reason: str, **where) -> ApprovalRecord:
    """Reject a pre-prod evaluation of ``model_id`` (see :func:`decide`)."""
    return decide(model_id, evaluation_id, decision=REJECTED, approver=approver, reason=reason, **where)


def list_approvals(
    *,
    model_id: str | None = None,
    evaluation_id: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> list[ApprovalRecord]:
    """Decisions in the order they were made, of a model version and/or an evaluation; each marked superseded
    when a newer decision on the same evaluation exists."""
    rows = datamart.read_approvals(_engine(engine, work), model_id=model_id, evaluation_id=evaluation_id)
    return [_of(ApprovalRecord, row) for row in rows]
