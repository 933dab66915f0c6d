"""The command line of metric-based retraining.

Usage::

    python -m utils.retraining --deployment-id ID [--monitors drift quality] [--since ISO] [--holdout-share 0.3]
        [--min-records 100] [--seed 42] [--work-dir DIR] [--no-stage | --no-evaluate]

It prints the alerting windows, the new training set's sizes, the candidate beside its parent, the registered
version, the pre-prod deployment that now serves it (unless ``--no-stage``) and the verdict of its pre-prod
evaluation against the champion (unless ``--no-evaluate``). Exit status 0; 2 when retraining cannot go on (the
message says why).
"""

from __future__ import annotations

import argparse
import json
import sys

from utils import config
from utils.choices import MONITORS, RETRAIN_ON


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.retraining",
        description="Retrain a prod deployment's model on the labelled records of its alerting windows.",
    )
    parser.add_argument("--deployment-id", required=True, help="the prod deployment whose alerts to learn from")
    parser.add_argument(
        "--monitors", nargs="+", choices=MONITORS, default=list(RETRAIN_ON), help="alerts of these monitors count"
    )
    parser.add_argument("--since", help="only windows starting at or after this moment, ISO 8601")
    parser.add_argument("--holdout-share", type=float, default=0.3, help="production records held out to judge on")
    parser.add_argument("--min-records", type=int, default=100, help="labelled production records needed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work-dir", help=config.WORK_DIR_HELP)
    parser.add_argument("--no-stage", action="store_true", help="register only; do not deploy the candidate in preprod")
    parser.add_argument("--no-evaluate", action="store_true", help="stage the candidate, but do not evaluate it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import pandas as pd  # the machinery: imported once the arguments are parsed

    from utils.retraining.run import evaluate_candidate, retrain, stage_candidate

    try:
        retraining = retrain(
            args.deployment_id,
            monitors=tuple(args.monitors),
            since=args.since,
            holdout_share=args.holdout_share,
            min_records=args.min_records,
            seed=args.seed,
            work=args.work_dir,
        )
        candidate = None if args.no_stage else stage_candidate(retraining, work=args.work_dir)
        evaluated = None
        if candidate is not None and not args.no_evaluate:
            evaluated = evaluate_candidate(retraining, candidate, seed=args.seed, work=args.work_dir)
    except Exception as error:  # not prod, no alerts, too few records, missing files: say what, not a traceback
        print(f"retraining failed: {error}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 120, "display.precision", 3):
        print("alerting windows:\n" + retraining.training_set.windows.to_string(index=False))
        print("\ntraining set:\n" + retraining.training_set.sizes().to_string())
        print("\ncandidate beside its parent:\n" + retraining.comparison.to_string())
    print(f"\nregistered {retraining.model_id} (lineage: {json.dumps(retraining.lineage)[:200]}...)")
    if candidate is not None:
        print(f"staged in preprod as {candidate.name!r} (deployment {candidate.deployment_id})")
    if evaluated is not None:
        print(
            f"pre-prod evaluation {evaluated.evaluation_id} against {evaluated.baseline_model_id}: {evaluated.verdict}"
        )
        for reason in evaluated.reasons:
            print(f"  - {reason}")
        print("a model validator decides: python -m utils.lifecycle approve|reject --evaluation-id ...")
    return 0
