"""Scheduled monitor runs: every window of every monitor of a deployment evaluated exactly once, in order.

A deployment's monitor configuration holds its ``schedule`` (:func:`validate_schedule`): how many minutes each
monitor's windows last (by default, as in the original workshop, quality and fairness every hour and drift every
three hours; the data-quality monitor every hour) and how long after a window's end to wait for late feedback.
Windows are aligned to midnight UTC: an hourly window is ``[10:00, 11:00)``.

:class:`Scheduler` evaluates the windows that have ended since the last one recorded, oldest first, the monitors
that share a window in one evaluation. A window is recorded as run in the transaction that stores its
measurements (table ``monitor_runs``), so a scheduler that stops at any moment and starts again catches up the
windows it missed, in order, without running one twice; a second scheduler that raced it to a window stores
nothing. ``python -m utils.monitoring schedule`` runs it (:mod:`utils.monitoring.cli`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from utils import config, datamart
from utils.deployment import get_deployment
from utils.monitoring.monitor import DeploymentMonitor
from utils.monitoring.notifications import notifier_for, resume_pending
from utils.monitoring.results import MONITORS, Evaluation, Thresholds
from utils.monitoring.thresholds import stored_configuration
from utils.times import as_utc, utc_now

_LOG = logging.getLogger(__name__)
_DAY_MINUTES = 24 * 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The original workshop's schedule: quality and fairness hourly, drift every three hours.
DEFAULT_EVERY_MINUTES = {"quality": 60, "fairness": 60, "drift": 180, "data_quality": 60}


def default_schedule() -> dict:
    """The schedule of a deployment without its own."""
    return {"every_minutes": dict(DEFAULT_EVERY_MINUTES), "delay_minutes": 0}


def _minutes(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where} must be a whole number of minutes of at least 1, got {value!r}")
    if _DAY_MINUTES % value and value % _DAY_MINUTES:
        raise ValueError(f"{where} must divide a day (1440 minutes) or be a whole number of days, got {value}")
    return value


def validate_schedule(given: object) -> dict:
    """The complete ``schedule`` section (defaults filled in), or a ValueError naming the key at fault.

    ``every_minutes`` maps a monitor to the length of its windows (null: not scheduled); ``delay_minutes`` is how
    long after a window's end it is evaluated (0 to 1440)."""
    if not isinstance(given, dict):
        raise ValueError("schedule must be a JSON object with every_minutes and delay_minutes")
    unknown = sorted(set(given) - {"every_minutes", "delay_minutes"})
    if unknown:
        raise ValueError(f"unknown key 'schedule.{unknown[0]}'; known: every_minutes, delay_minutes")
    every = given.get("every_minutes", DEFAULT_EVERY_MINUTES)
    if not isinstance(every, dict):
        raise ValueError("schedule.every_minutes must map monitors to minutes")
    strange = sorted(set(every) - set(MONITORS))
    if strange:
        raise ValueError(f"unknown monitor 'schedule.every_minutes.{strange[0]}'; known: {', '.join(MONITORS)}")
    merged = {**DEFAULT_EVERY_MINUTES, **every}
    checked = {m: None if v is None else _minutes(v, f"schedule.every_minutes.{m}") for m, v in merged.items()}
    delay = given.get("delay_minutes", 0)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= _DAY_MINUTES:
        raise ValueError(f"schedule.delay_minutes must be a whole number from 0 to 1440, got {delay!r}")
    return {"every_minutes": checked, "delay_minutes": delay}


def stored_settings(engine: Engine, deployment_id: str) -> tuple[Thresholds, tuple[str, ...], dict]:
    """The thresholds, protected attributes and schedule of a deployment's stored monitor configuration (a field
    the document leaves out, or the whole document, at its default)."""
    thresholds, attributes, document = stored_configuration(engine, deployment_id)
    return thresholds, attributes, validate_schedule(document.get("schedule", default_schedule()))


def aligned_start(moment: datetime, minutes: int) -> datetime:
    """The start of the window of ``minutes`` that holds ``moment`` (windows aligned to midnight UTC)."""
    length = timedelta(minutes=minutes)
    return _EPOCH + ((as_utc(moment) - _EPOCH) // length) * length


def due_windows(
    schedule: dict, last_ends: dict[str, datetime], since: datetime, now: datetime
) -> list[tuple[datetime, datetime, tuple[str, ...]]]:
    """The windows that ended (plus the delay) by ``now`` and follow each monitor's last recorded window (else
    start at the window holding ``since``): ``(start, end, monitors)``, by end then start, oldest first."""
    ready = as_utc(now) - timedelta(minutes=schedule["delay_minutes"])
    windows: dict[tuple[datetime, datetime], list[str]] = {}
    for monitor, minutes in schedule["every_minutes"].items():
        if minutes is None:
            continue
        start = last_ends.get(monitor) or aligned_start(since, minutes)
        length = timedelta(minutes=minutes)
        while start + length <= ready:
            windows.setdefault((start, start + length), []).append(monitor)
            start += length
    ordered = sorted(windows, key=lambda window: (window[1], window[0]))
    return [(start, end, tuple(m for m in MONITORS if m in windows[(start, end)])) for start, end in ordered]


class Scheduler:
    """Runs the scheduled windows of some deployments (see the module's description).

    ``clock`` gives the current moment (UTC) and ``since`` where a deployment without recorded windows starts (by
    default when its current deployment record was created); both are arguments so that a test can move time.
    """

    def __init__(
        self,
        deployment_ids: list[str],
        *,
        work: str | os.PathLike | None = None,
        engine: Engine | None = None,
        reference=None,
        since: str | datetime | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.layout = config.layout(work)
        self.engine = engine or datamart.connect(work=self.layout.root)
        self.deployment_ids = list(deployment_ids)
        self.reference = reference
        self.since = None if since is None else as_utc(since)
        self.clock = clock
        self._monitors: dict[tuple[str, str], DeploymentMonitor] = {}
        for deployment_id in self.deployment_ids:
            get_deployment(deployment_id, engine=self.engine)  # an unknown deployment fails at once
            resume_pending(self.engine, deployment_id, self.log_file)

    @property
    def log_file(self):
        return self.layout.logs / "alerts.log"

    def due(self, deployment_id: str, now: datetime | None = None) -> list[tuple[datetime, datetime, tuple]]:
        """The windows of a deployment due at ``now`` (default: the clock), oldest first."""
        _, _, schedule = stored_settings(self.engine, deployment_id)
        runs = datamart.read_monitor_runs(self.engine, deployment_id)
        last_ends = {m: group["window_end"].max().to_pydatetime() for m, group in runs.groupby("monitor")}
        since = self.since or get_deployment(deployment_id, engine=self.engine).created_at
        return due_windows(schedule, last_ends, since, now or self.clock())

    def _monitor(self, deployment_id: str) -> DeploymentMonitor:
        """The deployment's monitors, set up again when its model or stored thresholds changed."""
        thresholds, attributes, _ = stored_settings(self.engine, deployment_id)
        model_id = get_deployment(deployment_id, engine=self.engine).model_id
        key = (deployment_id, model_id)
        cached = self._monitors.get(key)
        if cached is None or (cached.thresholds, cached.attributes) != (thresholds, attributes):
            cached = self._monitors[key] = DeploymentMonitor(
                deployment_id,
                reference=self.reference,
                thresholds=thresholds,
                attributes=attributes,
                engine=self.engine,
                work=self.layout.root,
            )
        return cached

    def run_due(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> list[Evaluation]:
        """Evaluate every due window of every deployment, oldest first; a deployment whose window fails stops
        there (logged) and is tried again on the next call, so no window is skipped. ``stop``, once set, ends the
        run after the window in hand."""
        done = []
        for deployment_id in self.deployment_ids:
            for start, end, monitors in self.due(deployment_id, now):
                if stop is not None and stop.is_set():
                    return done
                try:
                    done.append(self._monitor(deployment_id).evaluate(start, end, monitors=monitors, scheduled=True))
                except datamart.WindowAlreadyRan:
                    _LOG.info("window %s .. %s of %s ran elsewhere", start, end, deployment_id)
                except Exception:
                    _LOG.exception("window %s .. %s of %s failed; it runs again next time", start, end, deployment_id)
                    break
        return done

    def run_forever(self, stop: threading.Event, *, poll_seconds: float = 60.0) -> None:
        """Run due windows every ``poll_seconds`` until ``stop`` is set (a signal handler sets it)."""
        while not stop.is_set():
            for evaluation in self.run_due(stop=stop):
                _LOG.info("evaluated %r", evaluation)
            stop.wait(poll_seconds)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the notifications still being delivered."""
        return notifier_for(self.engine, self.log_file).drain(timeout)
