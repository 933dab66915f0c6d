"""The state of the deployments as the stored measurements tell it: windows, alerts, a tile per deployment.

Everything here is read live from the data mart (``measurements``, ``deployments``, the lifecycle tables) and
derived by the same rule the monitors use: an alert is a stored measurement of an alerting metric
(:data:`utils.monitoring.results.ALERT_METRICS`) whose ``breached`` is true. The *open* alerts of a deployment are
those of its most recently evaluated window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart, lifecycle
from utils.deployment import SPACES
from utils.monitoring.results import ALERT_METRICS, MONITORS, window_text

#: A monitor's status in a window: an alert, all ok, or no verdict (too few records, or not run).
ALERT, OK, NO_VERDICT = "alert", "ok", "no verdict"


def alerting_rows(measurements: pd.DataFrame) -> pd.Series:
    """Which measurements are of an alerting metric."""
    pairs = zip(measurements["monitor"], measurements["metric"], strict=True)
    return pd.Series([pair in ALERT_METRICS for pair in pairs], index=measurements.index, dtype=bool)


def alerts(measurements: pd.DataFrame) -> pd.DataFrame:
    """The alerts among ``measurements``: breached alerting metrics, by window start."""
    breached = measurements["breached"].fillna(False).astype(bool)
    return measurements[alerting_rows(measurements) & breached].reset_index(drop=True)


def _status(rows: pd.DataFrame) -> str:
    verdicts = rows.loc[alerting_rows(rows), "breached"].dropna()
    if verdicts.empty:
        return NO_VERDICT
    return ALERT if bool(verdicts.any()) else OK


def windows(measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per stored evaluation (window), oldest window first: ``evaluation_id``, ``window_start``,
    ``window_end``, ``evaluated_at``, ``records`` (most records any of its measurements saw), ``alerts`` and the
    status of each monitor."""
    columns = ["evaluation_id", "window_start", "window_end", "evaluated_at", "records", "alerts", *MONITORS]
    if measurements.empty:
        return pd.DataFrame(columns=columns)
    found = alerts(measurements)["evaluation_id"].value_counts()
    rows = []
    for evaluation_id, group in measurements.groupby("evaluation_id", sort=False):
        first = group.iloc[0]
        statuses = {m: _status(group[group["monitor"] == m]) for m in MONITORS}
        rows.append(
            {
                "evaluation_id": evaluation_id,
                "window_start": first["window_start"],
                "window_end": first["window_end"],
                "evaluated_at": first["evaluated_at"],
                "records": int(group["records"].max()),
                "alerts": int(found.get(evaluation_id, 0)),
                **statuses,
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["window_start", "evaluated_at"], kind="stable", na_position="first").reset_index(
        drop=True
    )


def latest(table: pd.DataFrame) -> pd.Series | None:
    """The most recently evaluated window of :func:`windows` (None when there is none)."""
    return None if table.empty else table.sort_values("evaluated_at", kind="stable").iloc[-1]


@dataclass
class Tile:
    """What the overview shows of one deployment."""

    deployment_id: str
    name: str
    space: str
    model_id: str
    status: str
    windows: int
    alerts: int
    open_alerts: int
    last_window: str | None = None
    last_evaluated_at: datetime | None = None
    monitors: dict[str, str] = field(default_factory=dict)
    risk_evaluation: str | None = None

    @property
    def attention(self) -> tuple:
        """Sort key: open alerts first (most first), then deployments never evaluated, then past alerts, prod first."""
        space_rank = -SPACES.index(self.space) if self.space in SPACES else 0
        return (-self.open_alerts, self.windows > 0, -self.alerts, space_rank, self.name)


def _risk_evaluation(engine: Engine, deployment_id: str) -> str | None:
    found = lifecycle.list_evaluations(deployment_id=deployment_id, engine=engine)
    return None if not found else f"{found[-1].verdict} ({found[-1].created_at:%Y-%m-%d})"


def tiles(engine: Engine) -> list[Tile]:
    """A tile per current deployment, what needs attention first."""
    measured = datamart.read_measurements(engine)
    made = []
    for row in datamart.read_deployments(engine):
        own = windows(measured[measured["deployment_id"] == row["deployment_id"]])
        last = latest(own)
        tile = Tile(
            deployment_id=row["deployment_id"],
            name=row["name"],
            space=row["space"],
            model_id=row["model_id"],
            status=row["status"],
            windows=len(own),
            alerts=int(own["alerts"].sum()) if len(own) else 0,
            open_alerts=0 if last is None else int(last["alerts"]),
            risk_evaluation=_risk_evaluation(engine, row["deployment_id"]),
        )
        if last is not None:
            tile.last_window = window_text(last["window_start"], last["window_end"])
            tile.last_evaluated_at = last["evaluated_at"].to_pydatetime()
            tile.monitors = {m: last[m] for m in MONITORS}
        made.append(tile)
    return sorted(made, key=lambda t: t.attention)
