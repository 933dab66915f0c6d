"""Plots in one shared style.

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot, so
a notebook shows it exactly once (as the cell's value) and nothing is left open.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from utils.data import CLASS_ORDER, LABEL, NUMERIC_FEATURES, UNFAVOURABLE

STYLE = {
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.prop_cycle": cycler(color=["#1f6f8b", "#e07a5f", "#81b29a", "#f2cc8f", "#3d405b"]),
    "grid.alpha": 0.3,
    "font.size": 9,
    "figure.dpi": 96,
    "savefig.dpi": 96,
}
LABEL_COLOURS = {"No Risk": "#1f6f8b", "Risk": "#e07a5f"}


def _figure(width: float = 7.0, height: float = 3.6, **subplots) -> tuple[Figure, np.ndarray]:
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height), layout="constrained")
        axes = figure.subplots(**subplots, squeeze=False)
    return figure, axes


def numeric_distributions(frame: pd.DataFrame) -> Figure:
    """Histogram of each numeric feature, split by label."""
    figure, axes = _figure(9.0, 4.8, nrows=2, ncols=4)
    for axis, column in zip(axes.flat, NUMERIC_FEATURES):
        low, high = frame[column].min(), frame[column].max()
        # One bar per value for small integer ranges, 20 bins otherwise.
        bins = np.arange(low - 0.5, high + 1.5) if high - low <= 10 else 20
        for label in CLASS_ORDER:
            values = frame.loc[frame[LABEL] == label, column]
            axis.hist(values, bins=bins, alpha=0.6, color=LABEL_COLOURS[label], label=label)
        axis.set_title(column)
    axes.flat[-1].axis("off")
    axes.flat[0].legend()
    figure.suptitle("Numeric features by outcome")
    return figure


def risk_rate_by_category(frame: pd.DataFrame, columns: list[str]) -> Figure:
    """Share of ``Risk`` within each value of some categorical columns."""
    figure, axes = _figure(9.0, 2.6 * ((len(columns) + 1) // 2), nrows=(len(columns) + 1) // 2, ncols=2)
    overall = (frame[LABEL] == UNFAVOURABLE).mean()
    for axis, column in zip(axes.flat, columns):
        rates = (frame[LABEL] == UNFAVOURABLE).groupby(frame[column]).mean().sort_values()
        axis.barh(rates.index.astype(str), rates.to_numpy(), color=LABEL_COLOURS[UNFAVOURABLE])
        axis.axvline(overall, color="black", linestyle="--", linewidth=1)
        axis.set_title(f"Share of Risk by {column}")
        axis.set_xlim(0, 1)
    for axis in axes.flat[len(columns) :]:
        axis.axis("off")
    return figure


def loss_curve(curve: pd.DataFrame, step_name: str) -> Figure:
    """Training and validation loss along the training steps."""
    figure, axes = _figure()
    axis = axes[0, 0]
    axis.plot(curve["step"], curve["train_loss"], label="training loss")
    axis.plot(curve["step"], curve["validation_loss"], label="validation loss")
    axis.set_xlabel(step_name)
    axis.set_ylabel("log loss")
    axis.set_title("Training and validation loss")
    axis.legend()
    return figure


def roc_and_confusion(y_true, risk_score, matrix: pd.DataFrame) -> Figure:
    """ROC curve (``Risk`` positive) beside the confusion matrix."""
    figure, axes = _figure(9.0, 3.8, ncols=2)
    positive = np.asarray(y_true) == UNFAVOURABLE
    fpr, tpr, _ = roc_curve(positive, risk_score)
    roc_axis, matrix_axis = axes[0]
    roc_axis.plot(fpr, tpr)
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    roc_axis.set_xlabel("false positive rate")
    roc_axis.set_ylabel("true positive rate")
    roc_axis.set_title("ROC curve (Risk is positive)")
    matrix_axis.imshow(matrix.to_numpy(), cmap="Blues")
    matrix_axis.grid(False)
    counts = matrix.to_numpy()
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        matrix_axis.text(column, row, str(count), ha="center", va="center", fontsize=12, color=colour)
    matrix_axis.set_xticks(range(len(matrix.columns)), matrix.columns)
    matrix_axis.set_yticks(range(len(matrix.index)), matrix.index)
    matrix_axis.set_xlabel("predicted")
    matrix_axis.set_ylabel("actual")
    matrix_axis.set_title("Confusion matrix (test split)")
    return figure
