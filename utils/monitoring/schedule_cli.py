"""``python -m utils.monitoring schedule``: run the scheduled windows of deployments, for ever or once.

Usage::

    python -m utils.monitoring schedule --deployment-id ID [--deployment-id ID ...] [--work-dir DIR]
        [--reference CSV] [--since ISO] [--poll-seconds S] [--once]

Without ``--once`` it runs until SIGTERM or Ctrl-C (finishing the window it is evaluating); with ``--once`` it
evaluates the windows due now and exits, for cron. Either way it first catches up the windows missed since the
last one recorded, in order.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from utils import config

#: How long a stopping scheduler waits for notifications still being delivered.
DRAIN_SECONDS = 60.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.monitoring schedule",
        description="Evaluate the monitors of deployments on the schedule stored with their configuration.",
    )
    parser.add_argument("--deployment-id", action="append", required=True, help="a deployment (repeatable)")
    parser.add_argument("--work-dir", help=config.WORK_DIR_HELP)
    parser.add_argument("--reference", help="training data CSV (default: the deployed version's training data)")
    parser.add_argument(
        "--since", help="where a deployment without recorded windows starts, ISO 8601 (default: its creation)"
    )
    parser.add_argument("--poll-seconds", type=float, default=60.0, help="how often to look for due windows")
    parser.add_argument("--once", action="store_true", help="evaluate the windows due now and exit (for cron)")
    return parser


def main(argv: list[str]) -> int:
    """Exit status 0; 2 when a deployment is unknown or the data mart cannot be reached."""
    args = _parser().parse_args(argv)
    if args.poll_seconds <= 0:
        print("--poll-seconds must be more than 0", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from utils.monitoring.schedule import Scheduler  # the monitors: imported once the arguments are parsed

    try:
        scheduler = Scheduler(args.deployment_id, work=args.work_dir, reference=args.reference, since=args.since)
    except Exception as error:  # an unknown deployment or an unreachable data mart: say what, not a traceback
        print(f"scheduling failed: {error}", file=sys.stderr)
        return 2
    if args.once:
        scheduler.run_due()
    else:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        scheduler.run_forever(stop, poll_seconds=args.poll_seconds)
    scheduler.drain(DRAIN_SECONDS)
    return 0
