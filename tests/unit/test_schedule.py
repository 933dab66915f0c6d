"""Scheduled monitor runs over a simulated clock: every window of every monitor evaluated exactly once, in order,
across a restart, a failing window and a second scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from utils import datamart, lifecycle
from utils.deployment import deploy
from utils.monitoring import DeploymentMonitor, main
from utils.monitoring.schedule import Scheduler, default_schedule, due_windows
from utils.times import utc_now

HOUR = timedelta(hours=1)
DAY = datetime(2026, 4, 6, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_due_windows_follow_the_default_schedule_aligned_to_the_hour():
    windows = due_windows(default_schedule(), {}, DAY + timedelta(minutes=30), DAY + timedelta(hours=3, minutes=5))
    assert [(s.hour, e.hour, monitors) for s, e, monitors in windows] == [
        (0, 1, ("quality", "fairness", "data_quality")),
        (1, 2, ("quality", "fairness", "data_quality")),
        (0, 3, ("drift",)),
        (2, 3, ("quality", "fairness", "data_quality")),
    ]
    delayed = {**default_schedule(), "delay_minutes": 10}
    last = {"quality": DAY + 2 * HOUR, "fairness": DAY + 2 * HOUR, "drift": DAY + 3 * HOUR, "data_quality": None}
    assert [(s.hour, m) for s, _, m in due_windows(delayed, last, DAY, DAY + 3 * HOUR)] == [
        (0, ("data_quality",)),
        (1, ("data_quality",)),
    ]


def _runs(workspace, deployment_id: str) -> list[tuple[str, int, int]]:
    runs = datamart.read_monitor_runs(workspace.engine, deployment_id)
    return [(r.monitor, (r.window_start - DAY) // HOUR, (r.window_end - DAY) // HOUR) for r in runs.itertuples()]


def _expected(hours: int) -> list[tuple[str, int, int]]:
    hourly = [(m, h, h + 1) for h in range(hours) for m in ("quality", "fairness")]
    drift = [("drift", h, h + 3) for h in range(0, hours - 2, 3)]
    return sorted(hourly + drift, key=lambda run: (run[1], run[0]))


@pytest.mark.slow
def test_every_window_runs_exactly_once_across_a_restart_and_a_failure(workspace, monkeypatch):
    where = {"engine": workspace.engine, "work": workspace.work}
    deployment_id = deploy("credit-risk-v1", name="scheduled", space="dev", registry=workspace.registry, **where)
    deployment_id = deployment_id.deployment_id
    schedule = {"every_minutes": {"data_quality": None}}  # quality and fairness hourly, drift every three hours
    lifecycle.set_monitor_config(deployment_id, {"schedule": schedule}, **where)
    clock = Clock(DAY + timedelta(hours=2, minutes=30))
    first = Scheduler([deployment_id], since=DAY, clock=clock, **where)
    assert [e.window for e in first.run_due()] == [
        "2026-04-06 .. 2026-04-06 01:00",
        "2026-04-06 01:00 .. 2026-04-06 02:00",
    ]

    clock.now = DAY + timedelta(hours=7, minutes=1)
    evaluate = DeploymentMonitor.evaluate

    def failing_at_four(self, start, end, **options):
        if start == DAY + 4 * HOUR:
            raise OSError("the data mart went away")
        return evaluate(self, start, end, **options)

    monkeypatch.setattr(DeploymentMonitor, "evaluate", failing_at_four)
    first.run_due()  # windows until 04:00 run; 04:00 fails, so nothing after it runs
    assert _runs(workspace, deployment_id) == _expected(4)

    monkeypatch.setattr(DeploymentMonitor, "evaluate", evaluate)
    restarted = Scheduler([deployment_id], since=DAY, clock=clock, **where)  # a new process, the same data mart
    restarted.run_due()
    assert restarted.run_due() == []
    assert _runs(workspace, deployment_id) == _expected(7)
    measured = datamart.read_measurements(workspace.engine, deployment_id)
    per_window = measured.groupby(["monitor", "window_start"])["evaluation_id"].nunique()
    assert (per_window == 1).all() and len(per_window) == len(_expected(7))

    with pytest.raises(datamart.WindowAlreadyRan):  # a second scheduler that raced to a window stores nothing
        restarted._monitor(deployment_id).evaluate(DAY, DAY + HOUR, monitors=("quality",), scheduled=True)
    assert len(datamart.read_measurements(workspace.engine, deployment_id)) == len(measured)


def test_the_schedule_command_runs_once_and_names_a_missing_deployment(workspace, capsys):
    work = str(workspace.work)
    assert main(["schedule", "--deployment-id", workspace.deployment.deployment_id, "--work-dir", work, "--once"]) == 0
    assert main(["schedule", "--deployment-id", "no-such-deployment", "--work-dir", work, "--once"]) == 2
    assert "no-such-deployment" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("schedule", "named"),
    [
        ({"every_minutes": {"drift": 7}}, "schedule.every_minutes.drift"),
        ({"every_minutes": {"latency": 60}}, "schedule.every_minutes.latency"),
        ({"every_minutes": {"quality": 0}}, "schedule.every_minutes.quality"),
        ({"delay_minutes": -5}, "schedule.delay_minutes"),
        ({"cron": "0 * * * *"}, "schedule.cron"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_key(workspace, schedule, named):
    where = {"engine": workspace.engine, "work": workspace.work}
    with pytest.raises(lifecycle.LifecycleError, match=named):
        lifecycle.set_monitor_config(workspace.deployment.deployment_id, {"schedule": schedule}, **where)


def _contiguous(runs) -> bool:
    """Each monitor's windows follow one another without a gap or an overlap."""
    for _, windows in runs.sort_values("window_start").groupby("monitor"):
        if (windows["window_start"].iloc[1:].to_numpy() != windows["window_end"].iloc[:-1].to_numpy()).any():
            return False
    return True


@pytest.mark.slow
def test_the_long_running_command_stops_on_sigterm_and_catches_up_when_started_again(workspace):
    where = {"engine": workspace.engine, "work": workspace.work}
    deployment = deploy("credit-risk-v1", name="scheduled-process", space="dev", registry=workspace.registry, **where)
    since = (utc_now() - timedelta(hours=6)).isoformat()
    command = [sys.executable, "-m", "utils.monitoring", "schedule", "--deployment-id", deployment.deployment_id]
    command += ["--work-dir", str(workspace.work), "--since", since, "--poll-seconds", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while len(datamart.read_monitor_runs(workspace.engine, deployment.deployment_id)) < 3:
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
    stopped = datamart.read_monitor_runs(workspace.engine, deployment.deployment_id)
    assert _contiguous(stopped)

    again = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    runs = datamart.read_monitor_runs(workspace.engine, deployment.deployment_id)
    assert _contiguous(runs) and len(runs) > len(stopped)
    hourly = runs[runs["monitor"] == "quality"]
    assert len(hourly) in (6, 7)  # every hour since --since that has ended: none run twice, none skipped
    assert set(stopped["window_start"]) <= set(runs["window_start"])
