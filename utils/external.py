"""Traffic for a model served by another engine: scored there, logged here through the payload-logging API.

What an application in front of another engine does when its predictions are to be monitored: score applicants
through the engine (:class:`utils.remote.RemoteModel`), then ``POST`` each batch with its inputs, the engine's
decisions and probabilities (and optionally the moment each was scored) to
``/ml/v4/subscriptions/{id}/payload``, and later the outcomes to ``.../feedback``, naming the transaction each
labels. Every call goes over HTTP to the scoring service, with its API key when it has one.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pandas as pd

from utils.data import FEATURES, LABEL, UNFAVOURABLE
from utils.remote import RemoteModel
from utils.times import as_utc

#: Records per logging request (the service accepts up to :data:`utils.scoring.MAX_ROWS`).
ROWS_PER_REQUEST = 50


class LoggingError(RuntimeError):
    """The service refused a logging request: its status and error body."""


def service_client(service_url: str, api_key: str | None = None, *, timeout: float = 60.0) -> httpx.Client:
    """An HTTP client of the scoring service, carrying the API key when there is one."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=service_url, headers=headers, timeout=timeout)


def _post(client: httpx.Client, path: str, body: dict) -> dict:
    answer = client.post(path, json=body)
    if answer.status_code >= 300:
        raise LoggingError(f"{path}: {answer.status_code} {answer.text[:500]}")
    return answer.json()


def subscribe(client: httpx.Client, name: str, **fields) -> dict:
    """Create a subscription (``fields`` as ``POST /ml/v4/subscriptions`` takes them); returns it."""
    return _post(client, "/ml/v4/subscriptions", {"name": name, **fields})


def _inputs(frame: pd.DataFrame) -> list[dict]:
    return frame[list(FEATURES)].astype(object).to_dict("records")


def score_and_log(
    client: httpx.Client,
    subscription_id: str,
    engine: RemoteModel,
    frame: pd.DataFrame,
    *,
    scored_at: Sequence | None = None,
    rows_per_request: int = ROWS_PER_REQUEST,
) -> pd.DataFrame:
    """Score the applicants of ``frame`` through ``engine`` and log them; returns one row per applicant with its
    ``transaction_id``, ``prediction`` and ``probability_risk``. ``scored_at`` (one moment per row) backdates the
    records, as a simulation of past traffic does."""
    logged = []
    for start in range(0, len(frame), rows_per_request):
        part = frame.iloc[start : start + rows_per_request]
        labels, probabilities = engine.predict(part)
        records = [
            {"inputs": inputs, "prediction": str(label), "probabilities": [float(p) for p in pair]}
            for inputs, label, pair in zip(_inputs(part), labels, probabilities, strict=True)
        ]
        if scored_at is not None:
            for record, moment in zip(records, scored_at[start : start + rows_per_request], strict=True):
                record["scored_at"] = as_utc(moment).isoformat()
        ids = _post(client, f"/ml/v4/subscriptions/{subscription_id}/payload", {"records": records})["ids"]
        risk = list(engine.classes_).index(UNFAVOURABLE)
        logged += [
            {"transaction_id": i, "prediction": r["prediction"], "probability_risk": r["probabilities"][risk]}
            for i, r in zip(ids, records, strict=True)
        ]
    return pd.DataFrame(logged, index=frame.index)


def log_outcomes(
    client: httpx.Client,
    subscription_id: str,
    frame: pd.DataFrame,
    transaction_ids: Sequence[str],
    *,
    rows_per_request: int = ROWS_PER_REQUEST,
) -> int:
    """Log the true outcomes (``frame``'s label) of logged predictions, each naming its transaction; returns how
    many were stored."""
    stored = 0
    for start in range(0, len(frame), rows_per_request):
        part = frame.iloc[start : start + rows_per_request]
        records = [
            {"inputs": inputs, "label": label, "transaction_id": transaction_id}
            for inputs, label, transaction_id in zip(
                _inputs(part), part[LABEL], transaction_ids[start : start + rows_per_request], strict=True
            )
        ]
        stored += _post(client, f"/ml/v4/subscriptions/{subscription_id}/feedback", {"records": records})["records"]
    return stored
