"""``python -m utils.subscriptions``: create and list subscriptions from the command line.

``create`` takes the fields of a subscription as options (a declared schema, with its protected columns, as a JSON
file); ``list`` prints one line per subscription. A refused subscription exits with status 2 and the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from utils import datamart
from utils.contract import InputError
from utils.subscriptions import ENGINES, SubscriptionError, create_subscription, list_subscriptions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.subscriptions", description="Create and list the deployments the monitors watch."
    )
    parser.add_argument("--work-dir", help="working directory (default: $CREDIT_WORKDIR, else <project>/work)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the subscriptions")
    create = commands.add_parser("create", help="subscribe a deployment that another engine serves")
    create.add_argument("--name", required=True, help="1 to 100 ASCII letters, digits, '-', '_', '.'")
    create.add_argument("--engine", required=True, choices=ENGINES[1:])
    create.add_argument("--scoring-url", help="the engine's Open Inference Protocol .../infer URL")
    create.add_argument("--model-id", help="the model as the engine names it (default: the name)")
    create.add_argument(
        "--schema",
        help="a JSON file of column names and types, a protected column as its type and monitored group, e.g. "
        '{"income": "number", "age": {"type": "integer", "protected": {"below": 26}}} (default: the credit contract)',
    )
    create.add_argument("--label", help="the label's name (a declared schema)")
    create.add_argument("--classes", help="the two classes, favourable first, comma-separated (a declared schema)")
    create.add_argument("--prediction-field", help="the engine's output holding the decision")
    create.add_argument("--probability-field", help="the engine's output holding the probabilities")
    create.add_argument(
        "--protected", help="the credit contract's protected attributes, comma-separated (default: Sex,Age)"
    )
    create.add_argument("--reference", help="reference (training) data CSV, copied into the working directory")
    return parser


def _spec_options(args: argparse.Namespace) -> dict[str, Any]:
    split = lambda text: None if text is None else [part.strip() for part in text.split(",") if part.strip()]  # noqa: E731
    return {
        "model_id": args.model_id,
        "input_schema": json.loads(Path(args.schema).read_text()) if args.schema else None,
        "label": args.label,
        "classes": split(args.classes),
        "prediction_field": args.prediction_field,
        "probability_field": args.probability_field,
        "protected_attributes": split(args.protected),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``create`` a subscription or ``list`` them; exit status 2 with the reason when refused."""
    args = _parser().parse_args(argv)
    engine = datamart.connect(work=args.work_dir)
    try:
        if args.command == "create":
            spec = _spec_options(args)
            created = create_subscription(
                args.name,
                engine_name=args.engine,
                scoring_url=args.scoring_url,
                reference=args.reference,
                engine=engine,
                work=args.work_dir,
                **spec,
            )
            print(f"subscription {created.subscription_id}: {created.name} ({created.engine})")
            return 0
    except (SubscriptionError, InputError, OSError, ValueError) as error:
        print(f"subscription refused: {error}", file=sys.stderr)
        return 2
    for found in list_subscriptions(engine=engine):
        url = found.scoring_url or "no scoring URL"
        print(f"{found.subscription_id}  {found.name}  {found.engine}  {found.model_id}  {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
