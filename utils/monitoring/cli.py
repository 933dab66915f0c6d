"""The command line, for scheduled runs: evaluate every monitor of a deployment over a window.

Usage::

    python -m utils.monitoring --deployment-id ID [--start ISO] [--end ISO] [--work-dir DIR] [--reference CSV]

It prints the window, the monitors without a verdict and why, one line per alert, the gates and the report's path.
"""

from __future__ import annotations

import argparse
import sys

from utils.monitoring.monitor import evaluate_all
from utils.monitoring.results import Evaluation


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.monitoring",
        description="Evaluate the quality, fairness and drift monitors of a deployment.",
    )
    parser.add_argument("--deployment-id", required=True)
    parser.add_argument("--start", help="window start, ISO 8601, UTC unless a zone is given (inclusive; default: open)")
    parser.add_argument("--end", help="window end, ISO 8601 (exclusive; default: open)")
    parser.add_argument("--work-dir", help="working directory (default: $CREDIT_WORKDIR, else <project>/work)")
    parser.add_argument("--reference", help="training data CSV (default: <work dir>/data/train.csv)")
    parser.add_argument("--no-store", action="store_true", help="do not store the measurements")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit with status 1 when there is an alert")
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
    print(f"report: {evaluation.report_path}")


def main(argv: list[str] | None = None) -> int:
    """Evaluate all monitors of a deployment over a window, print the alerts, write the report.

    Exit status 0, or 1 with ``--fail-on-alert`` when there is an alert; 2 when the evaluation cannot run.
    """
    args = _parser().parse_args(argv)
    try:
        evaluation = evaluate_all(
            args.deployment_id,
            args.start,
            args.end,
            work=args.work_dir,
            reference=args.reference,
            store=not args.no_store,
        )
    except Exception as error:  # a missing deployment, reference or model: say what, not a traceback
        print(f"monitoring failed: {error}", file=sys.stderr)
        return 2
    _print(evaluation)
    return 1 if args.fail_on_alert and not evaluation.alerts.empty else 0
