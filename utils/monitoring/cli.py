"""The command line, for scheduled runs: evaluate every monitor of a deployment over a window.

Usage::

    python -m utils.monitoring --deployment-id ID [--start ISO] [--end ISO] [--work-dir DIR] [--reference CSV]
        [--min-auc-roc X] [--min-records N] ... (one option per field of ``Thresholds``, with its default)

It prints the window, the monitors without a verdict and why, one line per alert, the gates and the report's path.
``python -m utils.monitoring schedule ...`` runs the monitors on their schedule (:mod:`utils.monitoring.schedule_cli`).
The monitors (aif360, alibi-detect) are imported once the arguments are parsed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import TYPE_CHECKING

from utils import config
from utils.choices import ALL_MONITORS
from utils.monitoring.thresholds import Thresholds

if TYPE_CHECKING:
    from utils.monitoring.results import Evaluation

#: What each threshold option means (docs/monitoring.md, "Thresholds and minimums", explains the defaults).
_MEANING = {
    "min_auc_roc": "quality alert when ROC AUC on feedback is below it",
    "min_feedback": "feedback records needed for a quality verdict and for the debiased companion",
    "min_disparate_impact": "fairness alert when disparate impact is below it",
    "fairness_alpha": "evidence level the fairness alert also needs; 'none': the point estimate alone decides",
    "min_records": "payload records needed for a fairness or drift verdict",
    "min_group_records": "records each group needs for a disparate-impact verdict",
    "drift_p_value": "family-wise error rate of the per-feature drift tests",
    "max_drifted_share": "drift alert when the share of drifted features is above it",
    "multivariate_p_value": "drift alert when the classifier test's p-value is below it",
    "max_accuracy_drop": "model-drift alert when the estimated accuracy drop is above it",
    "min_requests": "requests needed for a performance verdict (--subscription-id)",
    "max_latency_p95_seconds": "performance alert when the 95th percentile latency is above it, in seconds",
    "max_rejected_request_share": "performance alert when the share of rejected requests is above it",
}


def _value_type(field: dataclasses.Field):
    """Parses an option of ``field``: a count for whole-number defaults, else a number (p-values and levels
    between 0 and 1, others 0 or more), and ``none`` where the field allows None."""
    counting = isinstance(field.default, int)
    optional = "None" in str(field.type)
    share = field.name.endswith(("p_value", "alpha"))

    def parse(text: str):
        if optional and text.lower() == "none":
            return None
        try:
            value = int(text) if counting else float(text)
        except ValueError:
            kind = "a whole number" if counting else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if share and not 0 < value < 1:
            raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value

    return parse


def _add_threshold_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("thresholds and minimums (see docs/monitoring.md)")
    for field in dataclasses.fields(Thresholds):
        meaning = _MEANING.get(field.name, f"the {field.name.replace('_', ' ')}")
        group.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=_value_type(field),
            default=argparse.SUPPRESS,  # not given: no attribute (``none`` is a value of its own)
            metavar="N" if isinstance(field.default, int) else "X",
            help=f"{meaning} (default: the deployment's stored configuration, else {field.default})",
        )


def thresholds_from(args: argparse.Namespace, base: Thresholds | None = None) -> Thresholds:
    """The :class:`Thresholds` the parsed options ask for, each option not given at ``base``'s value (default: the
    defaults of :class:`Thresholds`)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Thresholds) if hasattr(args, f.name)}
    return dataclasses.replace(base or Thresholds(), **given)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.monitoring",
        description="Evaluate the quality, fairness and drift monitors of a deployment.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--deployment-id", help="a deployment of this project's service")
    which.add_argument(
        "--subscription-id", help="a subscription (served here or by another engine): every monitor, performance too"
    )
    parser.add_argument("--start", help="window start, ISO 8601, UTC unless a zone is given (inclusive; default: open)")
    parser.add_argument("--end", help="window end, ISO 8601 (exclusive; default: open)")
    parser.add_argument("--work-dir", help=config.WORK_DIR_HELP)
    parser.add_argument("--reference", help="training data CSV (default: the deployed version's training data)")
    parser.add_argument("--no-store", action="store_true", help="do not store the measurements")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit with status 1 when there is an alert")
    _add_threshold_options(parser)
    return parser


def _print(evaluation: Evaluation) -> None:
    print(
        f"deployment {evaluation.deployment_name}, model {evaluation.model_id}, window {evaluation.window}: "
        f"{evaluation.payload_records} payload and {evaluation.feedback_records} feedback records"
    )
    for monitor, status in evaluation.statuses.items():
        print(f"  {monitor}: no verdict ({status})")
    alerts = evaluation.alerts
    if alerts.empty:
        print("no alerts")
    for alert in alerts.itertuples():
        subject = f" [{alert.subject}]" if isinstance(alert.subject, str) else ""
        print(f"ALERT {alert.monitor}.{alert.metric}{subject}: {alert.value:.4g} (threshold {alert.threshold:g})")
    print("gates: " + ", ".join(f"{name}={value}" for name, value in evaluation.gates.items()))
    print(f"report: {evaluation.report_path or 'none written (--no-store)'}")


def main(argv: list[str] | None = None) -> int:
    """Evaluate all monitors of a deployment over a window, print the alerts, write the report.

    Exit status 0, or 1 with ``--fail-on-alert`` when there is an alert; 2 when the evaluation cannot run.
    ``schedule`` as the first argument runs the scheduler instead (:mod:`utils.monitoring.schedule_cli`).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["schedule"]:
        from utils.monitoring.schedule_cli import main as schedule_main

        return schedule_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        evaluation = _evaluate_subscription(args) if args.subscription_id else _evaluate_deployment(args)
    except Exception as error:  # a missing deployment, reference or model: say what, not a traceback
        print(f"monitoring failed: {error}", file=sys.stderr)
        return 2
    return _report(evaluation, args.fail_on_alert)


def _evaluate_deployment(args: argparse.Namespace) -> Evaluation:
    from utils import datamart  # imported once the arguments are parsed; the monitors, once the window is being read
    from utils.monitoring.evaluate import evaluate_all
    from utils.monitoring.thresholds import stored_configuration

    stored, _, _ = stored_configuration(datamart.connect(work=args.work_dir), args.deployment_id)
    return evaluate_all(
        args.deployment_id,
        args.start,
        args.end,
        work=args.work_dir,
        reference=args.reference,
        thresholds=thresholds_from(args, stored),
        store=not args.no_store,
    )


def _evaluate_subscription(args: argparse.Namespace) -> Evaluation:
    from utils.monitoring.subscription import monitor_for

    monitor = monitor_for(args.subscription_id, work=args.work_dir, thresholds=thresholds_from(args))
    return monitor.evaluate(
        args.start, args.end, monitors=ALL_MONITORS, store=not args.no_store, report=not args.no_store
    )


def _report(evaluation: Evaluation, fail_on_alert: bool) -> int:
    _print(evaluation)
    return 1 if fail_on_alert and not evaluation.alerts.empty else 0
