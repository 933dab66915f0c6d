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
from utils.decision import RISK_THRESHOLD

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
#: The axis label of each numeric feature, with its unit.
NUMERIC_AXIS_LABELS = {
    "LoanDuration": "loan duration (months)",
    "LoanAmount": "loan amount (currency units)",
    "InstallmentPercent": "installment (share of income, level 1-6)",
    "CurrentResidenceDuration": "years at current residence (level 1-6)",
    "Age": "age (years)",
    "ExistingCreditsCount": "existing credits (count)",
    "Dependents": "dependents (count)",
}

#: p-values below this are shown as "< 0.001": more digits would only say "very small".
SMALLEST_SHOWN_P_VALUE = 0.001


def is_p_value(name: object) -> bool:
    """Whether a metric or column name holds p-values (``p_value``, ``classifier_drift_p_value``, ...)."""
    return isinstance(name, str) and (name == "p_value" or name.endswith("_p_value"))


def format_number(value, decimals: int = 3) -> str:
    """A measured number to ``decimals`` decimals (``—`` when missing), never in scientific notation."""
    return "—" if value is None or pd.isna(value) else f"{float(value):.{decimals}f}"


def format_p_value(value) -> str:
    """A p-value to three decimals, ``< 0.001`` below that (``—`` when missing)."""
    if value is None or pd.isna(value):
        return "—"
    return f"< {SMALLEST_SHOWN_P_VALUE:g}" if value < SMALLEST_SHOWN_P_VALUE else format_number(value)


def format_measurement(metric: str, value) -> str:
    """A value of ``metric`` as a table shows it: :func:`format_p_value` for p-values, else three decimals."""
    return format_p_value(value) if is_p_value(metric) else format_number(value)


def readable_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` to show: p-value columns as :func:`format_p_value`, other float columns to three
    decimals; integer, boolean and text columns as they are."""
    shown = frame.copy()
    for column in shown.columns:
        if is_p_value(column):
            shown[column] = shown[column].map(format_p_value)
        elif pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(format_number)
    return shown


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
        axis.set_xlabel(NUMERIC_AXIS_LABELS.get(column, column))
        axis.set_ylabel("applicants")
    axes.flat[-1].axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[-1].legend(handles, labels, title="outcome", loc="center")  # in the empty panel: it covers no bars
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


def risk_probability_histogram(risk_probability) -> Figure:
    """How scored applicants spread over the probability of ``Risk``, with the decision threshold."""
    figure, axes = _figure(7.0, 3.2)
    axis = axes[0, 0]
    axis.hist(np.asarray(risk_probability, dtype=float), bins=np.linspace(0, 1, 41), color=LABEL_COLOURS["Risk"])
    axis.axvline(RISK_THRESHOLD, color="black", linestyle="--", linewidth=1)
    axis.set_xlabel("probability of Risk")
    axis.set_ylabel("applicants")
    axis.set_title("Scored applicants by risk probability (dashed: decision threshold)")
    return figure


# ---------------------------------------------------------------- monitoring

ALERT_COLOUR = "#c0392b"
_TIMELINE_PANELS = (
    ("quality", "auc_roc", "Quality: ROC AUC on feedback", "ROC AUC"),
    ("fairness", "disparate_impact", "Fairness: disparate impact", "disparate impact"),
    ("drift", "drifted_share", "Drift: share of drifted features", "share of features"),
)


def _latest(history: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each window's metric, when a window was evaluated more than once."""
    key = ["window_start", "monitor", "metric", "subject"]
    ordered = history.sort_values("evaluated_at", kind="stable") if "evaluated_at" in history else history
    return ordered.drop_duplicates(key, keep="last").sort_values("window_start", kind="stable")


def monitoring_timeline(history: pd.DataFrame) -> Figure:
    """Quality, disparate impact per protected attribute and share of drifted features over the evaluated windows.

    ``history`` holds stored measurements (:func:`utils.datamart.read_measurements`); dashed lines are the
    thresholds, red crosses the windows that raised an alert, bars the 95% interval of disparate impact.
    """
    figure, axes = _figure(9.0, 7.2, nrows=3, ncols=1, sharex=True)
    history = _latest(history[history["window_start"].notna()])
    for axis, (monitor, metric, title, ylabel) in zip(axes[:, 0], _TIMELINE_PANELS):
        rows = history[(history["monitor"] == monitor) & (history["metric"] == metric)]
        subjects = rows["subject"].fillna("").unique()
        for subject in subjects:
            line = rows[rows["subject"].fillna("") == subject]
            when = line["window_start"].dt.tz_localize(None)
            label = subject or metric
            drawn = axis.plot(when, line["value"], marker="o", label=label)[0]
            if metric == "disparate_impact":
                bounds = history[(history["monitor"] == monitor) & (history["subject"] == subject)]
                low = bounds[bounds["metric"] == "disparate_impact_low"].set_index("window_start")["value"]
                high = bounds[bounds["metric"] == "disparate_impact_high"].set_index("window_start")["value"]
                values = line.set_index("window_start")["value"].astype(float)  # windows without a verdict: NaN
                low, high = low.reindex(values.index).astype(float), high.reindex(values.index).astype(float)
                errors = np.vstack([(values - low).clip(lower=0), (high - values).clip(lower=0)])
                axis.errorbar(when, values, yerr=errors, fmt="none", ecolor=drawn.get_color(), alpha=0.5, capsize=3)
            breached = line["breached"].fillna(False).astype(bool).to_numpy()
            if breached.any():
                axis.scatter(when[breached], line["value"][breached], marker="X", s=80, color=ALERT_COLOUR, zorder=5)
        for threshold in rows["threshold"].dropna().unique():
            axis.axhline(threshold, color=ALERT_COLOUR, linestyle="--", linewidth=1)
        axis.set_title(title)
        axis.set_ylabel(ylabel)
        if len(subjects) > 1 or (len(subjects) == 1 and subjects[0]):
            axis.legend(loc="best")
    starts = history["window_start"].dropna().dt.tz_localize(None)
    if starts.nunique() == 1:  # one window: a day either side, not the default span of years
        axes[-1, 0].set_xlim(starts.min() - pd.Timedelta(days=1), starts.min() + pd.Timedelta(days=1))
    axes[-1, 0].set_xlabel("evaluation window (start, UTC)")
    figure.autofmt_xdate()
    return figure


def drift_p_values(features: pd.DataFrame, threshold: float, title: str = "Data drift per feature") -> Figure:
    """Per-feature drift test p-values as -log10(p), longest bar most significant, each with its effect size; red
    bars drifted (significant, and an effect over the threshold).

    ``features`` is :attr:`utils.drift.DataDrift.features`; the dashed line is the corrected threshold.
    """
    figure, axes = _figure(7.5, 5.4)
    axis = axes[0, 0]
    ordered = features.sort_values("p_value", ascending=False)
    strength = -np.log10(np.clip(ordered["p_value"].to_numpy(dtype=float), 1e-300, 1.0))
    colours = [ALERT_COLOUR if drifted else LABEL_COLOURS["No Risk"] for drifted in ordered["drifted"]]
    axis.barh(ordered.index.astype(str), strength, color=colours)
    if "effect" in ordered:  # the effect size beside each bar: a feature drifted when both are large enough
        for row, (length, effect) in enumerate(zip(strength, ordered["effect"].to_numpy(dtype=float))):
            axis.text(length, row, f" effect {effect:.2f}", va="center", fontsize=7)
        axis.set_xlim(right=max(strength.max(), -np.log10(threshold)) * 1.25)
    axis.axvline(
        -np.log10(threshold), color="black", linestyle="--", linewidth=1, label=f"threshold p = {threshold:.2g}"
    )
    axis.set_xlabel("-log10(p-value): longer means stronger evidence of drift")
    axis.set_title(title)
    axis.legend(loc="lower right")
    return figure


def favourable_rates(
    fairness_table: pd.DataFrame, title: str = "Favourable outcome (No Risk) rate per group"
) -> Figure:
    """Favourable rate of the monitored and the reference group of each protected attribute, with disparate impact.

    ``fairness_table`` is indexed by attribute with the columns of :func:`utils.fairness.fairness_metrics`.
    """
    figure, axes = _figure(7.0, 3.6)
    axis = axes[0, 0]
    positions = np.arange(len(fairness_table))
    width = 0.38
    for offset, key, colour in ((-width / 2, "monitored", "#e07a5f"), (width / 2, "reference", "#1f6f8b")):
        rates = fairness_table[f"favourable_rate_{key}"].to_numpy(dtype=float)
        bars = axis.bar(positions + offset, rates, width, color=colour, label=f"{key} group")
        names = fairness_table[key].astype(str).tolist()
        for bar, name in zip(bars, names):
            axis.text(bar.get_x() + bar.get_width() / 2, 0.02, name, ha="center", va="bottom", color="white")
    for x, (_, row) in zip(positions, fairness_table.iterrows()):
        top = np.nanmax([row["favourable_rate_monitored"], row["favourable_rate_reference"], 0])
        axis.text(x, top + 0.03, f"DI {format_number(row['disparate_impact'])}", ha="center")
    axis.set_xticks(positions, fairness_table.index.astype(str))
    axis.set_ylim(0, 1.1)
    axis.set_ylabel("share of No Risk decisions")
    axis.set_title(title)
    axis.legend(loc="upper right")
    return figure


def feature_contributions(contributions: pd.DataFrame, top: int = 12, title: str | None = None) -> Figure:
    """shap contributions of one decision, largest first; red pushes towards Risk, blue towards No Risk.

    ``contributions`` is :attr:`utils.explain.Explanation.contributions`; features beyond ``top`` are summed
    into one bar.
    """
    shown = contributions["contribution"].astype(float)
    labels = [f"{name} = {value}" for name, value in contributions["value"].items()]
    if len(shown) > top:
        rest = shown.iloc[top - 1 :].sum()
        shown, labels = pd.concat([shown.iloc[: top - 1], pd.Series([rest])]), labels[: top - 1] + ["other features"]
    figure, axes = _figure(7.5, 0.3 * len(shown) + 1.4)
    axis = axes[0, 0]
    values = shown.to_numpy()[::-1]
    colours = [LABEL_COLOURS["Risk"] if v > 0 else LABEL_COLOURS["No Risk"] for v in values]
    axis.barh(labels[::-1], values, color=colours)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("contribution to the log-odds of Risk (right: towards Risk, left: towards No Risk)")
    axis.set_title(title or "Why this decision: feature contributions (shap)")
    return figure


def debiased_comparison(comparisons: dict[str, pd.DataFrame], threshold: float | None = 0.8) -> Figure:
    """Disparate impact and accuracy of the deployed model and its debiased companion, per protected attribute.

    ``comparisons`` maps an attribute to :attr:`utils.fairness.Companion.comparison`; the dashed line is the
    disparate impact ``threshold``.
    """
    figure, axes = _figure(9.0, 3.4, ncols=2)
    names = list(comparisons)
    positions = np.arange(len(names))
    width = 0.38
    for axis, metric, label in zip(axes[0], ("disparate_impact", "accuracy"), ("disparate impact", "accuracy")):
        for offset, model, colour in ((-width / 2, "deployed", "#3d405b"), (width / 2, "debiased", "#81b29a")):
            values = [comparisons[name].loc[model, metric] for name in names]
            axis.bar(positions + offset, values, width, color=colour, label=model)
        axis.set_xticks(positions, names)
        axis.set_ylim(0, 1.3)  # room above the bars for the legend
        axis.set_xlabel("protected attribute")
        axis.set_ylabel(label)
        axis.set_title(label.capitalize())
        if metric == "disparate_impact" and threshold is not None:
            axis.axhline(threshold, color=ALERT_COLOUR, linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        axis.legend(loc="upper center", ncols=3)
    figure.suptitle("Deployed model and debiased companion (reject option classification)")
    return figure


def evaluation_comparison(roc: dict[str, pd.DataFrame], figures: dict[str, dict[str, float]]) -> Figure:
    """Models side by side on the same test data: ROC curves (left) and the favourable rate of each protected
    group (right); ``roc`` and ``figures`` are keyed by model id (:mod:`utils.evaluation.figures`)."""
    figure, axes = _figure(9.0, 3.6, ncols=2)
    left, right = axes[0]
    for model, points in roc.items():
        auc = figures[model]["auc_roc"]
        left.plot(points["false_positive_rate"], points["true_positive_rate"], label=f"{model} (AUC {auc:.3f})")
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    left.set(title="ROC curve (Risk positive)", xlabel="false positive rate", ylabel="true positive rate")
    left.legend(loc="lower right")
    groups = [name for name in next(iter(figures.values())) if name.startswith("favourable_rate[")]
    width = 0.8 / len(figures)
    for i, (model, values) in enumerate(figures.items()):
        positions = np.arange(len(groups)) + (i - (len(figures) - 1) / 2) * width
        right.barh(positions, [values[g] for g in groups], height=width, label=model)
    right.set_yticks(np.arange(len(groups)), [g[len("favourable_rate[") : -1] for g in groups])
    right.set(title="Favourable (No Risk) rate per group", xlabel="share of applicants", xlim=(0, 1))
    right.invert_yaxis()
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(figures))  # below the axes: covers no bar
    return figure
