"""The command line: every model check on a registered model, as a table or JSON.

Usage::

    python -m utils.checks --model-id ID [--champion ID] [--work-dir DIR] [--threshold NAME=VALUE ...] [--json]

Exit status 0 when no check fails (skipped ones do not), 1 when one fails, 2 when the checks cannot run (an
unknown model, missing or broken test data, a bad threshold). The checks are imported once the arguments are parsed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from utils import config

if TYPE_CHECKING:
    from utils.checks.results import CheckReport


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.checks", description="Run the model checks on a registered model."
    )
    parser.add_argument("--model-id", required=True, help="the registered model to check, e.g. credit-risk-v2")
    parser.add_argument("--champion", help="the model it should not do worse than (the per-group regression)")
    parser.add_argument("--work-dir", help=config.WORK_DIR_HELP)
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a threshold, e.g. invariance_epsilon=0.02 (repeatable; see docs/model-checks.md)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _print(report: CheckReport) -> None:
    champion = f" against champion {report.champion_id}" if report.champion_id else ""
    print(f"model checks of {report.model_id}{champion} on {report.test_rows} held-out rows")
    print(report.table().to_string(index=False))
    verdict = "passed" if report.passed else f"FAILED ({', '.join(r.name for r in report.failures)})"
    print(f"model checks {verdict}")


def main(argv: list[str] | None = None) -> int:
    """Run the checks and print them; the exit status says whether they passed (0), failed (1) or could not run (2)."""
    args = _parser().parse_args(argv)
    from utils.checks.results import CheckThresholds
    from utils.checks.suite import check_model
    from utils.data import DataError
    from utils.registry import RegistryError

    try:
        thresholds = CheckThresholds.parse(args.threshold)
        report = check_model(args.model_id, champion_id=args.champion, work=args.work_dir, thresholds=thresholds)
    except (RegistryError, DataError, ValueError) as error:
        print(f"model checks cannot run: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print(report)
    return 0 if report.passed else 1
