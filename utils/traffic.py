"""Simulated production traffic: days of loan applications scored through the deployed HTTP endpoint.

Each simulated day's applicants are drawn from a pool of applicants with known outcomes: the data the model was
trained and tested on (notebook 05 passes the pipeline's test split), or, without a pool, fresh rows of the data
generator (:func:`utils.data.generate_credit_data`). They are sent to ``POST /ml/v4/deployments/{id}/predictions``
like any client's, so they land in the payload log by the real path; a share of them comes back with its true
outcome through ``POST /ml/v4/deployments/{id}/feedback``. The service stamps records with the time it receives
them; the simulation then moves each of that day's records to a time within the simulated day
(:func:`utils.datamart.restamp`), directly in the data mart. No client can set a record's time through the API:
only this simulation, which has the data mart itself in hand, does.

Four knobs, each one value for all days or one value per day (see :func:`from_day`), shift the drawn applicants
themselves (:func:`draw_applicants`, :func:`shift_applicants`), so that they mean the same on any data:

- ``drift``: covariate drift of every applicant: larger, longer loans, and a share of applicants younger;
- ``group_drift``: the monitored group of ``bias_group`` applies with riskier profiles: its applicants who turned
  out ``Risk`` are drawn more often (:func:`draw_applicants`), and its applications drift as ``drift`` would. The
  model's decisions follow the applications, so this is what lowers the favourable rate of that group, and
  disparate impact with it, on any data the model ranks well;
- ``label_bias``: a share of the monitored group's good outcomes turned into ``Risk``. It changes the true
  outcomes (the feedback), not the model's decisions: the feedback-based metrics see it.
- ``concept``: concept drift, the economy turning against long and large loans: a share ``concept`` of the
  ``No Risk`` outcomes of applicants whose loan is longer or larger than three quarters of the loans of ``source``
  (:data:`CONCEPT_QUANTILE`, measured after the other knobs) turns ``Risk``. The other knobs only change who
  applies; this one changes what follows for the same application, so a model trained before it is wrong in that
  segment in a way only new outcomes can teach.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import httpx
import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart
from utils.data import (
    COLUMNS,
    FAVOURABLE,
    FEATURES,
    LABEL,
    PROTECTED_GROUPS,
    UNFAVOURABLE,
    generate_credit_data,
    in_monitored_group,
)
from utils.scoring import MAX_ROWS, TRANSACTION_FIELD, wml_request
from utils.times import as_utc, utc_now

Knob = float | Sequence[float]

#: Growth of loans on the log scale at drift 1: durations x1.42, amounts x2.34.
LOAN_GROWTH = {"LoanDuration": 0.35, "LoanAmount": 0.85}
#: Share of applicants who get a younger age (up to 25) at drift 1.
YOUNG_SHARE = 0.5
_YOUNGEST, _YOUNG_UNTIL = PROTECTED_GROUPS["Age"]["monitored"]
#: Under ``concept``, loans longer or larger than this quantile of the source's loans turn out worse.
CONCEPT_QUANTILE = 0.75


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


def _check_pool(pool: pd.DataFrame) -> None:
    missing = [column for column in COLUMNS if column not in pool.columns]
    if missing:
        raise ValueError(f"the applicant pool lacks the column(s) {missing}")
    if not len(pool):
        raise ValueError("the applicant pool has no rows")


def shift_applicants(
    frame: pd.DataFrame,
    seed: int,
    *,
    drift: float = 0.0,
    group_drift: float = 0.0,
    label_bias: float = 0.0,
    concept: float = 0.0,
    bias_group: str = "Sex",
    source: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Applicants (features and outcome) with the knobs applied; all knobs 0 give them back unchanged.

    With ``d`` = ``drift``, for the monitored group ``max(drift, group_drift)``, loan durations and amounts grow by
    ``exp(LOAN_GROWTH * d)`` (rounded, kept within the range of ``source``, by default ``frame``), and a share
    ``YOUNG_SHARE * d`` of the applicants gets an age drawn between the youngest age in that range and 25.
    Then a share ``label_bias`` of the monitored group's favourable outcomes becomes ``Risk``, and a share
    ``concept`` of the favourable outcomes of long or large loans (a duration or an amount above the
    ``CONCEPT_QUANTILE`` quantile of ``source``, after the growth) too. The random draws do not depend on the
    knobs, so the same ``seed`` shifts the same applicants.
    """
    knobs = (("drift", drift), ("group_drift", group_drift), ("label_bias", label_bias), ("concept", concept))
    for name, value in knobs:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    source = frame if source is None else source
    rng = np.random.default_rng(seed)
    n, shifted = len(frame), frame.copy()
    level = np.where(in_monitored_group(frame, bias_group), max(drift, group_drift), drift)
    for column, growth in LOAN_GROWTH.items():
        grown = np.round(frame[column].to_numpy(dtype=float) * np.exp(growth * level))
        shifted[column] = np.clip(grown, source[column].min(), source[column].max()).astype(frame[column].dtype)
    low, high = max(int(source["Age"].min()), _YOUNGEST), int(source["Age"].max())
    young_age = rng.integers(low, max(low, min(high, _YOUNG_UNTIL)) + 1, size=n)
    ages = frame["Age"].to_numpy()
    younger = (rng.random(n) < YOUNG_SHARE * level) & (ages > young_age)
    shifted["Age"] = np.where(younger, young_age, ages).astype(frame["Age"].dtype)
    flipped = in_monitored_group(shifted, bias_group) & (shifted[LABEL] == FAVOURABLE).to_numpy()
    flipped &= rng.random(n) < label_bias
    long_or_large = np.zeros(n, dtype=bool)
    for column in LOAN_GROWTH:
        long_or_large |= (shifted[column] > source[column].quantile(CONCEPT_QUANTILE)).to_numpy()
    worse = long_or_large & (shifted[LABEL] == FAVOURABLE).to_numpy() & (rng.random(n) < concept)
    shifted[LABEL] = np.where(flipped | worse, UNFAVOURABLE, shifted[LABEL].to_numpy())
    return shifted


def split_pool(pool: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two parts of ``pool``, the second with ``share`` of its rows, alike in outcome and loans: the rows sorted by
    outcome, loan duration and loan amount, every ``1 / share``-th of them goes to the second part (systematic
    sampling). Days drawn from either part then differ in the features the drift moves by little more than
    rounding, where a random split of a few hundred applicants can leave one part with visibly longer loans."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    _check_pool(pool)
    ordered = pool.sort_values([LABEL, "LoanDuration", "LoanAmount"], kind="stable").reset_index(drop=True)
    position = np.arange(len(ordered))
    second = np.floor((position + 1) * share) > np.floor(position * share)
    return ordered[~second].reset_index(drop=True), ordered[second].reset_index(drop=True)


def _draw(rng: np.random.Generator, rows: np.ndarray, size: int) -> np.ndarray:
    """``size`` of ``rows``: without repeats while there are enough of them, else with."""
    if size and not len(rows):
        raise ValueError(f"{size} applicants to draw from none")
    return rng.choice(rows, size=size, replace=size > len(rows))


def draw_applicants(pool: pd.DataFrame, rows: int, seed: int, *, group_drift: float = 0.0, bias_group: str = "Sex"):
    """``rows`` applicants of ``pool`` (features and label), its monitored group in its share of the pool.

    With ``group_drift`` the monitored group applies with riskier profiles: a share ``group_drift`` of its
    applicants is drawn from its members who turned out ``Risk``, the rest from all its members. Rows are drawn
    without repeats while the pool has enough of each kind, else with.
    """
    _check_pool(pool)
    if not 0.0 <= group_drift <= 1.0:
        raise ValueError(f"group_drift must be between 0 and 1, got {group_drift}")
    # one random stream each for the group, the others and the order: the group's knob moves only the group
    group_rng, others_rng, order_rng = (np.random.default_rng([seed, stream]) for stream in range(3))
    pool = pool[list(COLUMNS)].reset_index(drop=True)
    monitored = in_monitored_group(pool, bias_group)
    risky = (pool[LABEL] == UNFAVOURABLE).to_numpy()
    count = round(rows * monitored.mean())
    good, bad = np.flatnonzero(monitored & ~risky), np.flatnonzero(monitored & risky)
    risky_share = group_drift + (1.0 - group_drift) * len(bad) / max(len(bad) + len(good), 1)
    risky_count = round(count * risky_share)
    if group_drift > 0 and count and not len(bad):
        raise ValueError(f"group_drift needs applicants of the monitored {bias_group} group with outcome Risk")
    order = order_rng.permutation(rows)
    chosen = np.empty(rows, dtype=int)
    chosen[order[:count]] = group_rng.permutation(
        np.concatenate([_draw(group_rng, bad, risky_count), _draw(group_rng, good, count - risky_count)])
    )
    chosen[order[count:]] = _draw(others_rng, np.flatnonzero(~monitored), rows - count)
    return pool.iloc[chosen].reset_index(drop=True)


def applicants(
    rows: int,
    seed: int,
    *,
    drift: float = 0.0,
    group_drift: float = 0.0,
    label_bias: float = 0.0,
    concept: float = 0.0,
    bias_group: str = "Sex",
    pool: pd.DataFrame | None = None,
    source: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One day's ``rows`` applicants with their true outcome, drawn from ``pool`` (:func:`draw_applicants`) and
    shifted (:func:`shift_applicants`). Without a pool, from three times as many rows of
    :func:`utils.data.generate_credit_data`. Shifted loans and ages stay within the ranges of ``source`` (default:
    the pool), so that days drawn from parts of the same applicants shift alike.
    """
    pool = generate_credit_data(3 * rows, seed) if pool is None else pool
    drawn = draw_applicants(pool, rows, seed, group_drift=group_drift, bias_group=bias_group)
    knobs = {"drift": drift, "group_drift": group_drift, "label_bias": label_bias, "concept": concept}
    source = pool if source is None else source
    return shift_applicants(drawn, seed + 104_729, bias_group=bias_group, source=source, **knobs)


def service_client(url: str, api_key: str | None = None) -> httpx.Client:
    """An HTTP client of the scoring service at ``url``, with the API key (default: ``$CREDIT_API_KEY``) if any."""
    key = api_key if api_key is not None else os.environ.get("CREDIT_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=120)


def deployment_path(deployment_id: str) -> str:
    """The path of a deployment's endpoints on the service."""
    return f"/ml/v4/deployments/{deployment_id}"


def _post(client: httpx.Client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def score_frame(client: httpx.Client, base: str, frame: pd.DataFrame, batch: int) -> tuple[list[str], list[str]]:
    """Score ``frame`` through the deployment at ``base`` (``/ml/v4/deployments/{id}`` on ``client``'s service), in
    requests of ``batch`` records; the transaction ids and decisions, in row order."""
    ids, decisions = [], []
    for low in range(0, len(frame), batch):
        block = _post(client, f"{base}/predictions", wml_request(frame.iloc[low : low + batch]))
        ids += block["predictions"][0]["transaction_ids"]
        decisions += [value[0] for value in block["predictions"][0]["values"]]
    return ids, decisions


def send_feedback(
    client: httpx.Client, base: str, frame: pd.DataFrame, batch: int, transaction_ids: Sequence[str] | None = None
) -> list[str]:
    """Send the rows of ``frame`` with their outcome as feedback to the deployment at ``base``, each naming the
    transaction it labels when ``transaction_ids`` are given (one per row); the feedback ids, in row order."""
    fields = [*FEATURES, LABEL]
    table = frame[fields].astype(object)
    if transaction_ids is not None:
        fields.append(TRANSACTION_FIELD)
        table = table.assign(**{TRANSACTION_FIELD: list(transaction_ids)})
    feedback_ids = []
    for low in range(0, len(frame), batch):
        body = {"input_data": [{"fields": fields, "values": table.iloc[low : low + batch].to_numpy().tolist()}]}
        feedback_ids += _post(client, f"{base}/feedback", body)["feedback_ids"]
    return feedback_ids


def _send_day(client, base: str, engine: Engine, frame: pd.DataFrame, day_start, chosen, batch: int) -> dict:
    """Score one day's applicants, send feedback for the ``chosen`` rows, and move them all into the day."""
    step = timedelta(days=1) / len(frame)
    moments = [day_start + step * (i + 0.5) for i in range(len(frame))]
    ids, decisions = score_frame(client, base, frame, batch)
    datamart.restamp(engine, ids, moments)
    feedback_ids = send_feedback(client, base, frame.iloc[chosen], batch)
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
    concept: Knob = 0.0,
    bias_group: str = "Sex",
    feedback_share: float = 0.4,
    seed: int = 2024,
    api_key: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
    batch_size: int = 500,
    pool: pd.DataFrame | None = None,
    source: pd.DataFrame | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> pd.DataFrame:
    """Send ``days`` days of applications to the scoring service at ``url`` and feedback for a share of them.

    Day ``d`` (from 1) starts at ``start + (d - 1) days`` (default: ``days`` days before today, midnight UTC);
    its ``records_per_day`` records are spread evenly over the day, and their feedback (a seeded
    ``feedback_share`` of them) carries the same times. Everything is seeded by ``seed``. ``engine`` (or the data
    mart of ``work``) must be the service's data mart. ``api_key`` defaults to ``$CREDIT_API_KEY``. Applicants come
    from ``pool``, shifted within the ranges of ``source`` (:func:`applicants`); ``progress`` wraps the loop over
    days (say, a ``tqdm``).

    Returns one row per day: its start, the knobs, records and feedback sent, and the share of ``No Risk``
    decisions the service returned.
    """
    if days < 1 or records_per_day < 1:
        raise ValueError("days and records_per_day must be at least 1")
    if not 0.0 <= feedback_share <= 1.0:
        raise ValueError(f"feedback_share must be between 0 and 1, got {feedback_share}")
    given = {"drift": drift, "group_drift": group_drift, "label_bias": label_bias, "concept": concept}
    knobs = {name: _per_day(value, days, name) for name, value in given.items()}
    now = pd.Timestamp(utc_now()).normalize() - pd.Timedelta(days=days)
    first = pd.Timestamp(as_utc(start)) if start is not None else now
    engine = engine or datamart.connect(work=work)
    batch = max(1, min(batch_size, MAX_ROWS))
    base = deployment_path(deployment_id)
    rows = []
    with service_client(url, api_key) as client:
        for day in (progress or iter)(range(1, days + 1)):
            settings = {name: values[day - 1] for name, values in knobs.items()}
            frame = applicants(records_per_day, seed + day, bias_group=bias_group, pool=pool, source=source, **settings)
            day_start = (first + pd.Timedelta(days=day - 1)).to_pydatetime()
            chosen = np.random.default_rng(seed + 1000 + day).choice(
                records_per_day, round(feedback_share * records_per_day), replace=False
            )
            sent = _send_day(client, base, engine, frame, day_start, np.sort(chosen), batch)
            rows.append({"day": day, "start": day_start, **settings, **sent})
    return pd.DataFrame(rows).set_index("day")
