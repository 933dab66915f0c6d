"""The drifted, labelled production records of a deployment's alerting windows, and the training set they extend.

:func:`alerting_windows` finds the windows in which the chosen monitors alerted (stored measurements), merged so
that no record is read twice; :func:`labelled_records` reads their feedback (records with the outcome that
followed); :func:`build_training_set` holds part of them out to judge the candidate on and adds the rest to the
original training data. Every choice and size is in the returned :class:`TrainingSet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart
from utils.choices import RETRAIN_ON as RETRAIN_ON
from utils.data import CATEGORIES, FEATURES, LABEL
from utils.features import stratified_split
from utils.monitoring import ALERT_METRICS
from utils.times import as_utc_or_none


class RetrainingError(ValueError):
    """Retraining cannot go on: no alerting window, too few labelled records, or a deployment that cannot be
    retrained; the message says which and what to do."""


@dataclass(frozen=True)
class TrainingSet:
    """The new training data, the held-out production records and how they were chosen."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    original_rows: int
    production_rows: int
    windows: pd.DataFrame

    @property
    def production(self) -> pd.DataFrame:
        """Every labelled production record of the windows, learned from or held out: the population the candidate
        is retrained and evaluated for."""
        return pd.concat([self.train.iloc[self.original_rows :], self.holdout], ignore_index=True)

    @property
    def reference(self) -> pd.DataFrame:
        """The retrained version's drift reference (docs/retraining.md): the production records, each distinct
        record once. A copy (the same application scored on two days) would weigh double in the per-feature tests,
        and the classifier test, its folds holding copies on both sides, would learn to recognise the reference's
        very records instead of its population: fresh applicants from it would look drifted."""
        return self.production.drop_duplicates(ignore_index=True)

    def sizes(self) -> pd.DataFrame:
        """Rows by part and outcome: what the candidate learns from and what judges it."""
        parts = {
            "original training data": self.train.iloc[: self.original_rows],
            "production records (training)": self.train.iloc[self.original_rows :],
            "production records (held out)": self.holdout,
            "new training set": self.train,
        }
        counts = {name: frame[LABEL].value_counts() for name, frame in parts.items()}
        table = pd.DataFrame(counts).T.reindex(columns=["No Risk", "Risk"]).fillna(0).astype(int)
        table["rows"] = table.sum(axis=1)
        return table.rename_axis("part")


def alerting_windows(
    engine: Engine,
    deployment_id: str,
    *,
    monitors: tuple[str, ...] = RETRAIN_ON,
    since: str | datetime | None = None,
) -> pd.DataFrame:
    """The windows of ``deployment_id`` whose stored measurements alerted for one of ``monitors`` and that start at
    or after ``since``; overlapping windows merged: start, end, the alerts (``monitor.metric``) and evaluations."""
    measured = datamart.read_measurements(engine, deployment_id, start=as_utc_or_none(since))
    alerts = pd.Series([(m, n) in ALERT_METRICS for m, n in zip(measured["monitor"], measured["metric"], strict=True)])
    alerting = measured[
        measured["monitor"].isin(monitors)
        & measured["breached"].fillna(False).astype(bool)
        & alerts.to_numpy(dtype=bool)
        & measured["window_start"].notna()
        & measured["window_end"].notna()
    ].sort_values(["window_start", "window_end"])
    merged: list[dict] = []
    for row in alerting.itertuples():
        alert = f"{row.monitor}.{row.metric}"
        if merged and row.window_start <= merged[-1]["end"]:
            last = merged[-1]
            last["end"] = max(last["end"], row.window_end)
            last["alerts"].add(alert)
            last["evaluations"].add(row.evaluation_id)
        else:
            merged.append(
                {
                    "start": row.window_start,
                    "end": row.window_end,
                    "alerts": {alert},
                    "evaluations": {row.evaluation_id},
                }
            )
    rows = [{**w, "alerts": ", ".join(sorted(w["alerts"])), "evaluations": len(w["evaluations"])} for w in merged]
    return pd.DataFrame(rows, columns=["start", "end", "alerts", "evaluations"])


def labelled_records(engine: Engine, deployment_id: str, windows: pd.DataFrame) -> pd.DataFrame:
    """The feedback records of ``windows`` (each record once): the 20 features and the outcome, as plain values."""
    parts = [
        datamart.read_window(engine, deployment_id, row.start, row.end, feedback=True) for row in windows.itertuples()
    ]
    columns = [*FEATURES, LABEL]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)[columns]
    for name in [*CATEGORIES, LABEL]:
        frame[name] = frame[name].astype(object)
    return frame


def build_training_set(
    original: pd.DataFrame,
    production: pd.DataFrame,
    windows: pd.DataFrame,
    *,
    holdout_share: float,
    seed: int,
    min_records: int,
) -> TrainingSet:
    """The original training data followed by the production records not held out; ``holdout_share`` of the
    production records (stratified by outcome) are held out to compare the candidate with its parent.

    Raises:
        RetrainingError: fewer than ``min_records`` production records, or too few of an outcome to split.
    """
    if len(production) < min_records:
        raise RetrainingError(
            f"{len(production)} labelled production records in the alerting windows; retraining needs at least "
            f"{min_records}: wait for more feedback, or lower min_records"
        )
    try:
        learn, holdout = stratified_split(production, holdout_share, seed)
    except ValueError as error:
        raise RetrainingError(f"the production records cannot be split: {error}") from None
    columns = [*FEATURES, LABEL]
    train = pd.concat([original[columns], learn[columns]], ignore_index=True)
    return TrainingSet(train, holdout[columns], len(original), len(learn), windows)
