"""A model served by another engine, scored over the Open Inference Protocol (KServe V2) as a local one is.

:class:`RemoteModel` has the two things the monitors and the explainer ask of a fitted classifier, ``classes_`` and
``predict_proba(frame)``: each call sends the frame's rows, one input tensor per column (numbers as ``INT64`` or
``FP64``, text as ``BYTES``, with ``content_type: pd`` so that engines such as MLServer rebuild a DataFrame), to the
engine's ``.../infer`` URL in requests of at most ``batch_rows`` rows, and reads the probabilities from the output
tensor named ``probability_field`` (columns in the order of ``classes``).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import pandas as pd

#: Rows per request to the engine (a V2 server's body limit is rarely under a few megabytes).
BATCH_ROWS = 500
#: Seconds a request to the engine may take.
TIMEOUT_SECONDS = 30.0


class RemoteScoringError(RuntimeError):
    """The engine did not answer, or answered without the expected probabilities."""


def _tensor(name: str, values: pd.Series) -> dict:
    if pd.api.types.is_integer_dtype(values.dtype):
        return {"name": name, "shape": [len(values)], "datatype": "INT64", "data": values.astype("int64").tolist()}
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return {"name": name, "shape": [len(values)], "datatype": "FP64", "data": values.astype(float).tolist()}
    data = values.astype(object).map(str).tolist()
    return {
        "name": name,
        "shape": [len(values)],
        "datatype": "BYTES",
        "data": data,
        "parameters": {"content_type": "str"},
    }


def inference_request(frame: pd.DataFrame, outputs: Sequence[str] = ()) -> dict:
    """The V2 request for the rows of ``frame``: one tensor per column, to be read back as a DataFrame."""
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [_tensor(str(name), frame[name]) for name in frame.columns],
    }
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


class RemoteModel:
    """A classifier behind a V2 ``infer`` URL (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        columns: Sequence[str],
        classes: Sequence[str],
        probability_field: str,
        prediction_field: str | None = None,
        batch_rows: int = BATCH_ROWS,
        timeout: float = TIMEOUT_SECONDS,
    ):
        self.url = url
        self.columns = list(columns)
        self.classes_ = np.asarray(classes)
        self.probability_field = probability_field
        self.prediction_field = prediction_field
        self.batch_rows = batch_rows
        self.timeout = timeout
        #: Rows scored through the engine so far (how much an explanation or a check cost).
        self.rows_scored = 0

    def _score(self, client: httpx.Client, frame: pd.DataFrame) -> tuple[list | None, np.ndarray]:
        wanted = [name for name in (self.prediction_field, self.probability_field) if name]
        try:
            answer = client.post(self.url, json=inference_request(frame, wanted))
            answer.raise_for_status()
            outputs = {tensor["name"]: tensor for tensor in answer.json()["outputs"]}
            found = np.asarray(outputs[self.probability_field]["data"], dtype=float)
            labels = outputs[self.prediction_field]["data"] if self.prediction_field else None
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as error:
            raise RemoteScoringError(f"{self.url} gave no {wanted}: {error}") from None
        return labels, found.reshape(len(frame), len(self.classes_))

    def predict(self, frame: pd.DataFrame) -> tuple[list | None, np.ndarray]:
        """The engine's decisions (its ``prediction_field``; None without one) and the probabilities of
        ``classes`` for each row of ``frame`` (its ``columns``)."""
        frame = frame[self.columns].reset_index(drop=True)
        if not len(frame):
            return ([] if self.prediction_field else None), np.empty((0, len(self.classes_)))
        with httpx.Client(timeout=self.timeout) as client:
            parts = [
                self._score(client, frame.iloc[start : start + self.batch_rows])
                for start in range(0, len(frame), self.batch_rows)
            ]
        self.rows_scored += len(frame)
        labels = [label for part, _ in parts for label in part] if self.prediction_field else None
        return labels, np.vstack([proba for _, proba in parts])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The probabilities of ``classes`` for each row of ``frame`` (its ``columns``), from the engine."""
        return self.predict(frame)[1]
