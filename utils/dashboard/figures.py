"""The dashboard's interactive charts, as Plotly figures in JSON (drawn in the page by the bundled plotly.js).

One shared look: titles that say what is shown, labelled axes with units, thresholds as dashed lines, breached
values as red crosses, bars towards ``Risk`` in red and towards ``No Risk`` in green.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from utils.monitoring.results import ALERT_METRICS
from utils.plain_words import label

RED, GREEN, BLUE, GREY = "#c0392b", "#2e7d32", "#1f5fa8", "#7f8c8d"
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 70, "b": 50},
    "height": 320,
    "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
    "font": {"family": "system-ui, sans-serif", "size": 13},
}
#: Axis titles of the alerting metrics (all are shares, ratios or p-values: no unit beyond the one named).
METRIC_TITLES = {
    "auc_roc": "ROC AUC on feedback",
    "disparate_impact": "disparate impact",
    "drifted_share": "share of features drifted",
    "classifier_drift_p_value": "classifier drift p-value",
    "estimated_accuracy_drop": "estimated accuracy drop",
    "out_of_range_share": "share out of training ranges",
}


def as_json(figure: go.Figure) -> str:
    """The figure as JSON for ``Plotly.newPlot`` (safe inside a ``<script>`` element)."""
    return pio.to_json(figure, validate=False).replace("</", "<\\/")


def _figure(title: str, x_title: str, y_title: str, **layout) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title={"text": title}, xaxis_title=x_title, yaxis_title=y_title, **_LAYOUT, **layout)
    return figure


def timeline(measurements: pd.DataFrame, monitor: str, metric: str) -> go.Figure:
    """One alerting metric over the windows (by window start), a line per subject; the interval of disparate
    impact as error bars; the threshold dashed; breached windows as red crosses."""
    rows = measurements[(measurements["monitor"] == monitor) & (measurements["metric"] == metric)]
    direction = ALERT_METRICS[(monitor, metric)]
    figure = _figure(f"{monitor.capitalize().replace('_', ' ')}: {METRIC_TITLES[metric]}", "window start (UTC)", metric)
    for subject, group in rows.groupby(rows["subject"].fillna(""), sort=False):
        error = None
        if metric == "disparate_impact":
            error = _interval(measurements, group, subject)
        figure.add_scatter(
            x=group["window_start"], y=group["value"], mode="lines+markers", name=subject or metric, error_y=error
        )
        breached = group[group["breached"].fillna(False).astype(bool)]
        if len(breached):
            name = f"alert ({subject})" if subject else "alert"
            marker = {"color": RED, "symbol": "x", "size": 12}
            figure.add_scatter(
                x=breached["window_start"], y=breached["value"], mode="markers", name=name, marker=marker
            )
    thresholds = rows["threshold"].dropna()
    if len(thresholds):
        figure.add_hline(
            y=float(thresholds.iloc[-1]),
            line={"dash": "dash", "color": GREY},
            annotation_text=f"threshold (alert {direction})",
        )
    return figure


def _interval(measurements: pd.DataFrame, group: pd.DataFrame, subject: str) -> dict:
    def bound(metric: str) -> pd.Series:
        rows = measurements[(measurements["metric"] == metric) & (measurements["subject"] == subject)]
        return rows.set_index("evaluation_id")["value"].reindex(group["evaluation_id"]).to_numpy()

    value = group["value"].to_numpy()
    low, high = bound("disparate_impact_low"), bound("disparate_impact_high")
    return {"type": "data", "symmetric": False, "array": high - value, "arrayminus": value - low}


def group_rates(attribute: str, rates: dict[str, dict[str, float | None]]) -> go.Figure:
    """Favourable rate per group, as scored and with the attribute flipped (the perturbed view)."""
    figure = _figure(
        f"{attribute}: share of favourable decisions per group",
        "group",
        "favourable decisions (share)",
        barmode="group",
        yaxis_range=[0, 1],
    )
    groups = list(rates)
    figure.add_bar(x=groups, y=[rates[g]["as_scored"] for g in groups], name="as scored", marker_color=BLUE)
    figure.add_bar(
        x=groups, y=[rates[g]["flipped"] for g in groups], name=f"{attribute} flipped (perturbed)", marker_color=GREY
    )
    return figure


def drift_effects(table: pd.DataFrame) -> go.Figure:
    """Effect size per feature, drifted features in red, the effect threshold dashed."""
    figure = _figure("Drift per feature: effect size in the window", "effect size (0 = same as training)", "")
    colours = [RED if drifted else BLUE for drifted in table["drifted"]]
    figure.add_bar(
        y=table["feature"],
        x=table["effect"],
        orientation="h",
        marker_color=colours,
        customdata=table["p_value"],
        hovertemplate="%{y}: effect %{x:.3f}, p-value %{customdata:.2g}<extra></extra>",
        showlegend=False,
    )
    if len(table):
        figure.add_vline(x=float(table["effect_threshold"].iloc[0]), line={"dash": "dash", "color": GREY})
    figure.update_layout(height=max(320, 24 * len(table) + 100), yaxis={"autorange": "reversed"})
    return figure


def distribution(found: dict) -> go.Figure:
    """A feature's distribution in the window against the training data (shares per category or bin)."""
    figure = _figure(
        f"{found['feature']}: window against training", label(found["feature"]), "share of records", barmode="group"
    )
    figure.add_bar(x=found["bins"], y=found["training"], name="training data", marker_color=GREY)
    figure.add_bar(x=found["bins"], y=found["window"], name="window", marker_color=BLUE)
    return figure


def contributions(rows: list[dict], *, top: int = 12) -> go.Figure:
    """The features' shap contributions to the log-odds of Risk, largest first (red: towards Risk)."""
    shown = rows[:top]
    figure = _figure(
        "What pushed the decision: contribution of each feature", "contribution to the log-odds of Risk", ""
    )
    figure.add_bar(
        y=[f"{r['label']} = {r['value']}" for r in shown],
        x=[r["contribution"] for r in shown],
        orientation="h",
        marker_color=[RED if r["contribution"] > 0 else GREEN for r in shown],
        showlegend=False,
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>",
    )
    figure.update_layout(height=max(320, 28 * len(shown) + 100), yaxis={"autorange": "reversed"})
    return figure
