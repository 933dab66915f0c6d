"""Command line: ``python -m utils.lifecycle {approve,reject,approvals,evaluations,history,promote,config,factsheet}``.

Exit status 0 on success; 1 when "Checks for Model Production" refuse a promotion (the message says what is
missing); 2 for bad input (an unknown evaluation, deployment or model, a name or reason that breaks the rules).
See ``docs/lifecycle.md``. The parser needs only :mod:`utils.choices`; the rest is imported once the arguments
are parsed.
"""

from __future__ import annotations

import argparse
import json
import sys

from utils import datamart
from utils.choices import PERSON_RULE, SPACES
from utils.config import WORK_DIR_HELP


def _decision_parser(commands, decision: str) -> None:
    command = commands.add_parser(decision, help=f"record that a pre-prod evaluation is {decision}d")
    command.add_argument("--model-id", required=True, help="the evaluated version, e.g. credit-risk-v2")
    command.add_argument("--evaluation-id", required=True)
    command.add_argument("--approver", required=True, help=PERSON_RULE)
    command.add_argument("--reason", required=True, help="why (required)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.lifecycle",
        description="Approve or reject pre-prod evaluations, promote approved versions, read the records.",
    )
    parser.add_argument("--work-dir", help=WORK_DIR_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    _decision_parser(commands, "approve")
    _decision_parser(commands, "reject")
    for listing in ("approvals", "evaluations"):
        command = commands.add_parser(listing, help=f"list the {listing} of a model version or a deployment")
        command.add_argument("--model-id")
        command.add_argument("--deployment-id" if listing == "evaluations" else "--evaluation-id")
    history = commands.add_parser("history", help="which version served a deployment, from when to when")
    history.add_argument("--deployment-id")
    history.add_argument("--name")
    history.add_argument("--space", choices=SPACES)
    promotion = commands.add_parser("promote", help="deploy the same registered version to the next space")
    promotion.add_argument("--model-id", required=True)
    promotion.add_argument("--to-space", choices=SPACES[1:], default=SPACES[-1])
    promotion.add_argument("--name", help="deployment name (default: the name in the space it comes from)")
    promotion.add_argument("--by", help=f"who promotes it ({PERSON_RULE})")
    promotion.add_argument("--reason")
    config = commands.add_parser("config", help="show or set a deployment's monitor configuration")
    config.add_argument("--deployment-id", required=True)
    config.add_argument("--set", metavar="JSON", help="the configuration document, as JSON text")
    config.add_argument("--by", help=f"who sets it ({PERSON_RULE})")
    sheet = commands.add_parser("factsheet", help="print a version's factsheet as it stands now (Markdown)")
    sheet.add_argument("--model-id", required=True)
    sheet.add_argument("--json", action="store_true", help="print the JSON document instead")
    sheet.add_argument("--write", action="store_true", help="also rewrite factsheet.md and factsheet.json")
    return parser


def _print_rows(rows: list, columns: tuple[str, ...]) -> None:
    if not rows:
        print("none")
    for row in rows:
        record = row.as_dict()
        print("  ".join(str(record[name]) for name in columns))


def _run(args: argparse.Namespace) -> None:
    from utils.lifecycle.promotion import deployment_history, promote
    from utils.lifecycle.records import decide, list_approvals, list_evaluations

    work = {"work": args.work_dir}
    if args.command in ("approve", "reject"):
        decision = "approved" if args.command == "approve" else "rejected"
        made = decide(
            args.model_id, args.evaluation_id, decision=decision, approver=args.approver, reason=args.reason, **work
        )
        print(f"{made.decision} {made.model_id} (evaluation {made.evaluation_id}): approval {made.approval_id}")
    elif args.command == "approvals":
        found = list_approvals(model_id=args.model_id, evaluation_id=args.evaluation_id, **work)
        _print_rows(
            found, ("created_at", "approval_id", "model_id", "evaluation_id", "decision", "approver", "superseded")
        )
    elif args.command == "evaluations":
        found = list_evaluations(model_id=args.model_id, deployment_id=args.deployment_id, **work)
        _print_rows(found, ("created_at", "evaluation_id", "model_id", "space", "baseline_model_id", "verdict"))
    elif args.command == "history":
        periods = deployment_history(args.deployment_id, name=args.name, space=args.space, **work)
        _print_rows(periods, ("space", "name", "model_id", "started_at", "ended_at", "deployed_by", "reason"))
    elif args.command == "promote":
        done = promote(args.model_id, args.to_space, name=args.name, deployed_by=args.by, reason=args.reason, **work)
        print(
            f"promoted {done.deployment.model_id} to {done.deployment.space} as {done.deployment.name} "
            f"({done.deployment.deployment_id}); monitor configuration copied from {done.source_deployment_id}"
        )
    elif args.command == "factsheet":
        _factsheet(args)
    else:
        _config(args, work)


def _factsheet(args: argparse.Namespace) -> None:
    from utils.factsheet import render_factsheet
    from utils.registry import registry_for

    registry, engine = registry_for(args.work_dir), datamart.connect(work=args.work_dir)
    document = registry.factsheet(args.model_id, engine=engine)
    if args.write:
        registry.write_factsheet(args.model_id, engine=engine)
    print(json.dumps(document, indent=1) if args.json else render_factsheet(document))


def _config(args: argparse.Namespace, work: dict) -> None:
    from utils.lifecycle.monitor_config import monitor_config, set_monitor_config
    from utils.lifecycle.records import LifecycleError

    if args.set is None:
        print(json.dumps(monitor_config(args.deployment_id, **work).as_dict(), indent=1))
        return
    try:
        document = json.loads(args.set)
    except json.JSONDecodeError as error:
        raise LifecycleError(f"--set is not JSON: {error}") from None
    print(json.dumps(set_monitor_config(args.deployment_id, document, updated_by=args.by, **work).as_dict(), indent=1))


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is 0, 1 (refused for production) or 2 (bad input)."""
    args = _parser().parse_args(argv)
    from utils.deployment import DeploymentError, ProductionCheckError
    from utils.lifecycle.records import LifecycleError
    from utils.registry import RegistryError

    try:
        _run(args)
    except ProductionCheckError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    except (LifecycleError, DeploymentError, RegistryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
