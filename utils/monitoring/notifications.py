"""Alerts that reach people: each new alert, and each recovery, delivered to a deployment's receivers.

A deployment's monitor configuration names its receivers under ``notifications`` (:func:`validate_notifications`):
a **webhook** (a JSON POST of :func:`notification_payload`) and a **log** line (``<work dir>/logs/alerts.log`` and
the ``utils.monitoring.notifications`` logger). An alerting metric *alerts* in a window when it is breached there
and was not in the latest earlier window with a verdict; it *recovers* when it is no longer breached
(:func:`alert_changes`). Each change is stored once per receiver (table ``notifications``, status ``pending``)
before :class:`Notifier`, a background thread, delivers it, retrying with exponential back-off and recording
``sent`` or ``failed`` and the attempts: the monitors never wait for a receiver.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart
from utils.monitoring.results import ALERT_METRICS, Evaluation

_LOG = logging.getLogger(__name__)
RECEIVER_TYPES = ("webhook", "log")
#: How far back the earlier verdict of a metric is looked for: an older one counts as none.
LOOKBACK = timedelta(days=31)
_SETTINGS = {"retries": 4, "backoff_seconds": 1.0, "timeout_seconds": 5.0, "report_base_url": None}


def default_notifications() -> dict:
    """The notifications of a deployment without its own: a log line per change, four retries from 1 s."""
    return {"receivers": [{"type": "log"}], **_SETTINGS}


def _url(value: object, where: str, *, empty_ok: bool = False) -> str | None:
    if value is None and empty_ok:
        return None
    parts = urlsplit(value) if isinstance(value, str) and len(value) <= 300 else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"{where} must be an http(s) URL with a host, at most 300 characters, got {value!r}")
    return value


def _receiver(given: object, where: str) -> dict:
    if not isinstance(given, dict) or given.get("type") not in RECEIVER_TYPES:
        raise ValueError(f"{where} must be an object with a type among {', '.join(RECEIVER_TYPES)}")
    allowed = {"type", "url"} if given["type"] == "webhook" else {"type"}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in {where}; a {given['type']} receiver takes {sorted(allowed)}")
    if given["type"] == "webhook":
        return {"type": "webhook", "url": _url(given.get("url"), f"{where}.url")}
    return {"type": "log"}


def validate_notifications(given: object) -> dict:
    """The complete ``notifications`` section (defaults filled in), or a ValueError naming the key at fault."""
    if not isinstance(given, dict):
        raise ValueError("notifications must be a JSON object with receivers and delivery settings")
    unknown = sorted(set(given) - {"receivers", *_SETTINGS})
    if unknown:
        raise ValueError(f"unknown key 'notifications.{unknown[0]}'; known: receivers, {', '.join(_SETTINGS)}")
    merged = {**default_notifications(), **given}
    if not isinstance(merged["receivers"], list):
        raise ValueError("notifications.receivers must be a list of receivers (empty: notify nobody)")
    receivers = [_receiver(r, f"notifications.receivers[{i}]") for i, r in enumerate(merged["receivers"])]
    retries = merged["retries"]
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise ValueError(f"notifications.retries must be a whole number from 0 to 10, got {retries!r}")
    for name, most in (("backoff_seconds", 3600), ("timeout_seconds", 600)):
        value = merged[name]
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= most:
            raise ValueError(f"notifications.{name} must be a number of seconds in (0, {most}], got {value!r}")
    base = _url(merged["report_base_url"], "notifications.report_base_url", empty_ok=True)
    return {**merged, "receivers": receivers, "report_base_url": base}


def stored_notifications(engine: Engine, deployment_id: str) -> dict:
    """The ``notifications`` section of a deployment's stored monitor configuration, else the defaults."""
    row = datamart.read_monitor_config(engine, deployment_id)
    section = (row or {}).get("config", {}).get("notifications")
    return default_notifications() if section is None else validate_notifications(section)


def alert_changes(evaluation: Evaluation, earlier: pd.DataFrame) -> list[dict]:
    """The alerting metrics of ``evaluation`` that began to alert or recovered, against the ``earlier`` verdicts
    (:func:`utils.datamart.read_verdicts`, oldest first): each measurement row with its ``kind``."""
    last = {
        (row.monitor, row.metric, row.subject if isinstance(row.subject, str) else None): bool(row.breached)
        for row in earlier.itertuples()
    }
    changes = []
    for row in evaluation.measurements.to_dict("records"):
        if not row["alerting"] or pd.isna(row["breached"]):
            continue
        subject = row["subject"] if isinstance(row["subject"], str) else None
        before = last.get((row["monitor"], row["metric"], subject), False)
        if bool(row["breached"]) != before:
            changes.append({**row, "subject": subject, "kind": "alert" if row["breached"] else "recovery"})
    return changes


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else pd.Timestamp(moment).isoformat()


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def report_link(evaluation: Evaluation, base_url: str | None) -> str | None:
    """The report of ``evaluation``: under ``base_url`` when given (a server of the reports folder), else its file."""
    path = evaluation.report_path
    if path is None:
        return None
    return f"{base_url.rstrip('/')}/{Path(path).name}" if base_url else Path(path).resolve().as_uri()


def notification_payload(evaluation: Evaluation, change: dict, deployment, report: str | None) -> dict:
    """The JSON document of one change: what a webhook receives and the log line says."""
    value, threshold = _number(change["value"]), _number(change["threshold"])
    direction = ALERT_METRICS[(change["monitor"], change["metric"])]
    subject = f" [{change['subject']}]" if change["subject"] else ""
    heading = "ALERT" if change["kind"] == "alert" else "RECOVERED"
    text = (
        f"{heading} {change['monitor']}.{change['metric']}{subject} of {deployment.name} ({deployment.space}), "
        f"model {deployment.model_id}: {value:.4g} (alert {direction} {threshold:g}) in window {evaluation.window}"
    )
    return {
        "kind": change["kind"],
        "deployment": {"id": deployment.deployment_id, "name": deployment.name, "space": deployment.space},
        "model_id": deployment.model_id,
        "monitor": change["monitor"],
        "metric": change["metric"],
        "subject": change["subject"],
        "value": value,
        "threshold": threshold,
        "direction": direction,
        "records": int(change["records"]),
        "window": {"start": _iso(evaluation.window_start), "end": _iso(evaluation.window_end)},
        "evaluation_id": evaluation.evaluation_id,
        "report": report,
        "text": text,
    }


def _receiver_name(receiver: dict) -> str:
    return f"webhook {receiver['url']}" if receiver["type"] == "webhook" else "log"


def _dedupe_key(payload: dict, receiver: str) -> str:
    parts = [payload["deployment"]["id"], payload["kind"], payload["monitor"], payload["metric"], payload["subject"]]
    parts += [payload["window"]["start"], payload["window"]["end"], receiver]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def record_changes(engine: Engine, evaluation: Evaluation, deployment, settings: dict) -> list[dict]:
    """Store one ``pending`` notification per change of ``evaluation`` and receiver; returns the new ones (a change
    already notified for the same window and receiver is not stored again)."""
    if evaluation.window_start is None:
        earlier = pd.DataFrame(columns=["monitor", "metric", "subject", "breached", "window_end"])
    else:
        monitors = evaluation.measurements["monitor"].unique().tolist()
        start = evaluation.window_start
        earlier = datamart.read_verdicts(
            engine, deployment.deployment_id, monitors, ended_after=start - LOOKBACK, ended_by=start
        )
    report = report_link(evaluation, settings["report_base_url"])
    stored = []
    for change in alert_changes(evaluation, earlier):
        payload = notification_payload(evaluation, change, deployment, report)
        for receiver in settings["receivers"]:
            row = {
                "notification_id": datamart.new_id(),
                "dedupe_key": _dedupe_key(payload, _receiver_name(receiver)),
                "deployment_id": deployment.deployment_id,
                "evaluation_id": evaluation.evaluation_id,
                "kind": payload["kind"],
                "monitor": payload["monitor"],
                "metric": payload["metric"],
                "subject": payload["subject"],
                "receiver": _receiver_name(receiver),
                "payload": payload,
                "status": "pending",
                "attempts": 0,
            }
            if datamart.insert_notification(engine, row):
                stored.append(row)
    return stored


class Notifier:
    """A background thread that delivers stored notifications, retrying with exponential back-off.

    Attempt ``n`` (from 1) that fails is retried after ``backoff_seconds * 2 ** (n - 1)`` seconds, up to
    ``retries`` times; each attempt's outcome is written to the notification's row. :meth:`submit` only queues.
    """

    def __init__(self, engine: Engine, log_file: str | Path, *, clock=time.monotonic):
        self.engine = engine
        self.log_file = Path(log_file)
        self.clock = clock
        self._due: list[tuple[float, int, dict, dict, int]] = []
        self._count = 0
        self._busy = 0
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="alert-notifier", daemon=True)
        self._thread.start()

    def submit(self, notifications: list[dict], settings: dict) -> None:
        """Queue ``notifications`` (rows as :func:`record_changes` or :func:`utils.datamart.read_notifications`
        return them) for delivery now, counting the attempts already made."""
        with self._ready:
            for row in notifications:
                self._push(self.clock(), row, settings, row["attempts"] + 1)
            self._ready.notify()

    def _push(self, due: float, row: dict, settings: dict, attempt: int) -> None:
        self._count += 1
        heapq.heappush(self._due, (due, self._count, row, settings, attempt))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued notification is sent or failed; False when ``timeout`` seconds passed first."""
        limit = math.inf if timeout is None else self.clock() + timeout
        with self._ready:
            while self._due or self._busy:
                left = limit - self.clock()
                if left <= 0:
                    return False
                self._ready.wait(min(left, 0.5))
        return True

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._due or self._due[0][0] > self.clock():
                    self._ready.wait(None if not self._due else max(self._due[0][0] - self.clock(), 0.0))
                _, _, row, settings, attempt = heapq.heappop(self._due)
                self._busy += 1
            try:
                self._attempt(row, settings, attempt)
            except Exception:  # the data mart failed to record it: the row stays pending, resumed on a restart
                _LOG.exception("notification %s could not be recorded", row["notification_id"])
            finally:
                with self._ready:
                    self._busy -= 1
                    self._ready.notify_all()

    def _attempt(self, row: dict, settings: dict, attempt: int) -> None:
        try:
            self._deliver(row, settings)
        except Exception as error:  # a receiver's failure is recorded, never raised into the monitors
            problem = f"{type(error).__name__}: {error}"[:500]
            last = attempt > settings["retries"]
            status = "failed" if last else "pending"
            datamart.update_notification(
                self.engine, row["notification_id"], status=status, attempts=attempt, last_error=problem
            )
            if last:
                _LOG.warning("notification to %s failed after %d attempts: %s", row["receiver"], attempt, problem)
            else:
                with self._ready:
                    self._push(
                        self.clock() + settings["backoff_seconds"] * 2 ** (attempt - 1), row, settings, attempt + 1
                    )
            return
        datamart.update_notification(self.engine, row["notification_id"], status="sent", attempts=attempt)

    def _deliver(self, row: dict, settings: dict) -> None:
        payload = row["payload"]
        if row["receiver"] == "log":
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a", encoding="utf-8") as log:
                log.write(payload["text"] + "\n")
            _LOG.info(payload["text"])
            return
        url = row["receiver"].removeprefix("webhook ")
        answer = httpx.post(url, json=payload, timeout=settings["timeout_seconds"])
        answer.raise_for_status()


_NOTIFIERS: dict[tuple[str, str], Notifier] = {}
_NOTIFIERS_LOCK = threading.Lock()


def notifier_for(engine: Engine, log_file: str | Path) -> Notifier:
    """The process's notifier of a data mart and log file (one background thread each, started on first use)."""
    key = (engine.url.render_as_string(hide_password=False), str(Path(log_file).resolve()))
    with _NOTIFIERS_LOCK:
        if key not in _NOTIFIERS:
            _NOTIFIERS[key] = Notifier(engine, log_file)
        return _NOTIFIERS[key]


def notify_changes(engine: Engine, evaluation: Evaluation, deployment, log_file: str | Path) -> list[dict]:
    """Store the notifications of ``evaluation``'s changes for the deployment's receivers and queue them for
    delivery in the background; returns the stored rows."""
    settings = stored_notifications(engine, deployment.deployment_id)
    stored = record_changes(engine, evaluation, deployment, settings)
    if stored:
        notifier_for(engine, log_file).submit(stored, settings)
    return stored


def resume_pending(engine: Engine, deployment_id: str, log_file: str | Path) -> int:
    """Queue the notifications of a deployment left ``pending`` (a process stopped before delivering them), with
    the deployment's current delivery settings; returns how many."""
    pending = datamart.read_notifications(engine, deployment_id, status="pending")
    if pending:
        notifier_for(engine, log_file).submit(pending, stored_notifications(engine, deployment_id))
    return len(pending)
