"""Simulated production traffic: days of loan applications scored through the deployed HTTP endpoint.

Each simulated day's applicants come from the data generator (:func:`utils.data.generate_credit_data`) and are
sent to ``POST /ml/v4/deployments/{id}/predictions`` like any client's, so they land in the payload log by the
real path; a share of them comes back with its true outcome through ``POST /ml/v4/deployments/{id}/feedback``.
The service stamps records with the time it receives them; the simulation then moves each of that day's records
to a time within the simulated day (:func:`utils.datamart.restamp`), directly in the data mart. No client can
set a record's time through the API: only this simulation, which has the data mart itself in hand, does.

Three knobs, each one value for all days or one value per day (see :func:`from_day`):

- ``drift``: covariate drift of every applicant (the generator's ``drift``: larger, longer loans, younger
  applicants);
- ``group_drift``: the same drift for the monitored group of ``bias_group`` only. The model's decisions follow
  the applications, so this is what lowers the favourable rate of that group, and disparate impact with it;
- ``label_bias``: the generator's ``bias``: a share of the monitored group's good outcomes turned into ``Risk``.
  It changes the true outcomes (the feedback), not the model's decisions: the feedback-based metrics see it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart
from utils.data import FAVOURABLE, FEATURES, LABEL, generate_credit_data, in_monitored_group
from utils.scoring import MAX_ROWS, wml_request
from utils.times import as_utc, utc_now

Knob = float | Sequence[float]


def from_day(days: int, first: int, value: float) -> list[float]:
    """A knob schedule over ``days`` days: 0 before day ``first`` (days count from 1), ``value`` from it on."""
    return [value if day >= first else 0.0 for day in range(1, days + 1)]


def _per_day(knob: Knob, days: int, name: str) -> list[float]:
    values = [float(knob)] * days if isinstance(knob, int | float) else [float(v) for v in knob]
    if len(values) != days:
        raise ValueError(f"{name} has {len(values)} values for {days} days")
    if not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{name} values must be between 0 and 1, got {values}")
    return values


def applicants(
    rows: int,
    seed: int,
    *,
    drift: float = 0.0,
    group_drift: float = 0.0,
    label_bias: float = 0.0,
    bias_group: str = "Sex",
) -> pd.DataFrame:
    """One day's applicants with their true outcome: the generator's rows, with the monitored group's rows
    replaced by rows drawn with drift ``max(drift, group_drift)`` when ``group_drift`` is set."""
    frame = generate_credit_data(rows, seed, drift=drift, bias=label_bias, bias_group=bias_group)
    if group_drift <= 0:
        return frame
    monitored = in_monitored_group(frame, bias_group)
    needed, size, shifted = int(monitored.sum()), max(4 * rows, 100), None
    while shifted is None or len(shifted) < needed:
        drawn = generate_credit_data(
            size, seed + 104_729, drift=max(drift, group_drift), bias=label_bias, bias_group=bias_group
        )
        shifted = drawn[in_monitored_group(drawn, bias_group)]
        size *= 2
    for column in frame.columns:
        frame.loc[monitored, column] = shifted[column].to_numpy()[:needed]
    return frame


def _post(client: httpx.Client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def _score(client: httpx.Client, base: str, frame: pd.DataFrame, batch: int) -> tuple[list[str], list[str]]:
    """Score ``frame`` in requests of ``batch`` records; the transaction ids and decisions, in row order."""
    ids, decisions = [], []
    for low in range(0, len(frame), batch):
        block = _post(client, f"{base}/predictions", wml_request(frame.iloc[low : low + batch]))
        ids += block["predictions"][0]["transaction_ids"]
        decisions += [value[0] for value in block["predictions"][0]["values"]]
    return ids, decisions


def _send_feedback(client: httpx.Client, base: str, frame: pd.DataFrame, batch: int) -> list[str]:
    """Send the rows of ``frame`` with their outcome as feedback; the feedback ids, in row order."""
    feedback_ids = []
    for low in range(0, len(frame), batch):
        values = frame.iloc[low : low + batch][[*FEATURES, LABEL]].astype(object).to_numpy().tolist()
        body = {"input_data": [{"fields": [*FEATURES, LABEL], "values": values}]}
        feedback_ids += _post(client, f"{base}/feedback", body)["feedback_ids"]
    return feedback_ids


def _send_day(client, base: str, engine: Engine, frame: pd.DataFrame, day_start, chosen, batch: int) -> dict:
    """Score one day's applicants, send feedback for the ``chosen`` rows, and move them all into the day."""
    step = timedelta(days=1) / len(frame)
    moments = [day_start + step * (i + 0.5) for i in range(len(frame))]
    ids, decisions = _score(client, base, frame, batch)
    datamart.restamp(engine, ids, moments)
    feedback_ids = _send_feedback(client, base, frame.iloc[chosen], batch)
    datamart.restamp(engine, feedback_ids, [moments[i] for i in chosen], feedback=True)
    favourable = float(np.mean(np.asarray(decisions) == FAVOURABLE))
    return {"records": len(frame), "feedback": len(chosen), "favourable_rate": favourable}


def simulate_traffic(
    url: str,
    deployment_id: str,
    *,
    days: int = 7,
    records_per_day: int = 500,
    start: str | datetime | None = None,
    drift: Knob = 0.0,
    group_drift: Knob = 0.0,
    label_bias: Knob = 0.0,
    bias_group: str = "Sex",
    feedback_share: float = 0.4,
    seed: int = 2024,
    api_key: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
    batch_size: int = 500,
) -> pd.DataFrame:
    """Send ``days`` days of applications to the scoring service at ``url`` and feedback for a share of them.

    Day ``d`` (from 1) starts at ``start + (d - 1) days`` (default: ``days`` days before today, midnight UTC);
    its ``records_per_day`` records are spread evenly over the day, and their feedback (a seeded
    ``feedback_share`` of them) carries the same times. Everything is seeded by ``seed``. ``engine`` (or the data
    mart of ``work``) must be the service's data mart. ``api_key`` defaults to ``$CREDIT_API_KEY``.

    Returns one row per day: its start, the knobs, records and feedback sent, and the share of ``No Risk``
    decisions the service returned.
    """
    if days < 1 or records_per_day < 1:
        raise ValueError("days and records_per_day must be at least 1")
    if not 0.0 <= feedback_share <= 1.0:
        raise ValueError(f"feedback_share must be between 0 and 1, got {feedback_share}")
    knobs = {
        "drift": _per_day(drift, days, "drift"),
        "group_drift": _per_day(group_drift, days, "group_drift"),
        "label_bias": _per_day(label_bias, days, "label_bias"),
    }
    now = pd.Timestamp(utc_now()).normalize() - pd.Timedelta(days=days)
    first = pd.Timestamp(as_utc(start)) if start is not None else now
    engine = engine or datamart.connect(work=work)
    key = api_key if api_key is not None else os.environ.get("CREDIT_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    batch = max(1, min(batch_size, MAX_ROWS))
    base = f"/ml/v4/deployments/{deployment_id}"
    rows = []
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for day in range(1, days + 1):
            settings = {name: values[day - 1] for name, values in knobs.items()}
            frame = applicants(records_per_day, seed + day, bias_group=bias_group, **settings)
            day_start = (first + pd.Timedelta(days=day - 1)).to_pydatetime()
            chosen = np.random.default_rng(seed + 1000 + day).choice(
                records_per_day, round(feedback_share * records_per_day), replace=False
            )
            sent = _send_day(client, base, engine, frame, day_start, np.sort(chosen), batch)
            rows.append({"day": day, "start": day_start, **settings, **sent})
    return pd.DataFrame(rows).set_index("day")
