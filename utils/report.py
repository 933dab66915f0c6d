"""The monitoring report: one self-contained HTML file per evaluation, the workshop's "insights dashboard".

Plots are embedded as PNG data, so the file can be mailed, archived or opened offline without anything beside it.
docs/monitoring.md explains how to read it.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from utils import plotting
from utils.data import write_text_atomically
from utils.fairness import disparate_impact_test

#: How the report names a measurement without a subject (the quality or drift of the whole window).
WHOLE_WINDOW = "whole window"

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem} th,td{border:1px solid #ddd;padding:.25rem .5rem}
th{background:#f4f4f4;text-align:left} td{text-align:right} img{max-width:100%}
.table{max-width:100%;overflow-x:auto}
.gates span{display:inline-block;margin:.2rem .6rem .2rem 0;padding:.35rem .7rem;border-radius:.3rem}
.ok{background:#e6f4ea} .bad{background:#fdecea} .none{background:#eee} .muted{color:#666;font-size:.85rem}
"""


def figure_png(figure: Figure) -> str:
    """A figure as a ``data:`` URL of PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_html(figure: Figure, alt: str) -> str:
    """A figure as an embedded image."""
    return f'<p><img src="{figure_png(figure)}" alt="{html.escape(alt)}"></p>'


def table_html(frame: pd.DataFrame, index: bool = True) -> str:
    """A table with its numbers shown plainly, in a box that scrolls sideways rather than leave the page."""
    shown = plotting.readable_table(frame).to_html(index=index, na_rep="—", border=0)
    return f'<div class="table">{shown}</div>'


def measurement_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Measurements to show (alerts, verdicts): each value formatted for its metric (p-values as ``< 0.001``,
    others to three decimals), thresholds as set, and no subject shown as :data:`WHOLE_WINDOW`."""
    shown = frame.copy()
    if "value" in shown:
        shown["value"] = [plotting.format_measurement(m, v) for m, v in zip(shown["metric"], shown["value"])]
    if "threshold" in shown:
        shown["threshold"] = shown["threshold"].map(lambda t: "—" if pd.isna(t) else f"{t:g}")
    if "subject" in shown:
        shown["subject"] = shown["subject"].map(lambda s: s if isinstance(s, str) and s else WHOLE_WINDOW)
    return shown


def _p_text(p_value) -> str:
    shown = plotting.format_p_value(p_value)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def _fairness_verdict(e, row, thresholds) -> str:
    """A disparate impact verdict with what decided it: the value, its interval, the p-value and the rule."""
    rows = e.measurements[(e.measurements["monitor"] == "fairness") & (e.measurements["subject"] == row.subject)]
    measured = rows.set_index("metric")["value"]
    # The fairness monitor calls the test with its default confidence level.
    level = inspect.signature(disparate_impact_test).parameters["confidence"].default
    low, high = (plotting.format_number(measured.get(f"disparate_impact_{end}")) for end in ("low", "high"))
    text = (
        f"{row.status}: DI {plotting.format_number(row.value)}, {level:.0%} interval [{low}, {high}], "
        f"{_p_text(measured.get('disparate_impact_p_value'))}"
    )
    if thresholds is None:
        return text
    rule = f"alert when DI < {row.threshold:g}"
    if thresholds.fairness_alpha is not None:
        rule += f" and p < {thresholds.fairness_alpha:g}"
    return f"{text}; {rule}"


def verdict_table(e, thresholds=None) -> pd.DataFrame:
    """One row per alerting metric of an evaluation, to show: its value, threshold, records and verdict.

    A disparate impact verdict also gives its interval, its p-value and, with the :class:`Thresholds
    <utils.monitoring.Thresholds>` the evaluation used, the rule that turned them into the verdict.
    """
    summary = e.summary()
    verdicts = [
        _fairness_verdict(e, row, thresholds)
        if row.metric == "disparate_impact" and row.status != "no verdict"
        else row.status
        for row in summary.itertuples()
    ]
    return measurement_table(summary.drop(columns="status").assign(verdict=verdicts))


def _gate(name: str, value: bool | None, good: bool) -> str:
    css = "none" if value is None else ("ok" if value == good else "bad")
    shown = "no verdict" if value is None else str(value).lower()
    return f'<span class="{css}">{html.escape(name)}: <strong>{shown}</strong></span>'


def _overview(e, history: pd.DataFrame | None, thresholds) -> list[str]:
    """The header, gates, alerts, why a monitor gave no verdict, the verdicts and the metrics over time."""
    gates = e.gates
    parts = [
        f"<h1>Monitoring report: {html.escape(e.deployment_name)}</h1>",
        f'<p class="muted">model {html.escape(e.model_id)} · window {html.escape(e.window)} (UTC) · '
        f"{e.payload_records} payload records, {e.feedback_records} feedback records · evaluated "
        f"{e.evaluated_at:%Y-%m-%d %H:%M} UTC</p>",
        '<div class="gates">'
        + _gate("quality_ok", gates["quality_ok"], True)
        + _gate("fairness_ok", gates["fairness_ok"], True)
        + _gate("drift_detected", gates["drift_detected"], False)
        + "</div>",
        "<h2>Alerts</h2>",
        table_html(measurement_table(e.alerts), index=False)
        if not e.alerts.empty
        else "<p>No threshold was breached.</p>",
    ]
    for monitor, status in e.statuses.items():
        parts.append(f"<p>{html.escape(monitor)}: no verdict — {html.escape(status)}.</p>")
    parts += [
        "<h2>Verdicts</h2>",
        table_html(verdict_table(e, thresholds), index=False),
        '<p class="muted">DI: disparate impact; p: the one-sided test that it is below the threshold, small when '
        "the window holds evidence of it rather than the noise of a few records.</p>",
    ]
    if history is not None and history["window_start"].notna().any():
        parts += ["<h2>Over time</h2>", image_html(plotting.monitoring_timeline(history), "metrics over time")]
    quality = e.details.get("quality")
    if quality:
        parts += ["<h2>Quality (feedback)</h2>", table_html(pd.DataFrame({"value": quality}))]
    return parts


def _companions(e) -> list[str]:
    """The debiased companions beside the deployed model (none: nothing)."""
    companions = e.details.get("companions") or {}
    if not companions:
        return []
    comparisons = {name: c.comparison for name, c in companions.items()}
    thresholds = e.measurements.loc[e.measurements["metric"] == "disparate_impact", "threshold"].dropna()
    threshold = float(thresholds.iloc[0]) if len(thresholds) else None
    parts = [
        "<h3>Debiased companion (aif360 reject option classification)</h3>",
        image_html(plotting.debiased_comparison(comparisons, threshold), "deployed and debiased"),
    ]
    for name, companion in companions.items():
        note = "" if companion.constraint_met else " (the fairness bound could not be met)"
        parts += [
            f"<p>{html.escape(name)}: band ±{companion.margin:.3f} around the threshold, "
            f"{companion.changed_share:.1%} of decisions changed{note}.</p>",
            table_html(companion.comparison),
        ]
    return parts


def _fairness(e) -> list[str]:
    """Favourable rates, the fairness table, the perturbation check and the companions (no fairness: nothing)."""
    fairness = e.details.get("fairness")
    if fairness is None or fairness.empty:
        return []
    parts = [
        "<h2>Fairness</h2>",
        image_html(plotting.favourable_rates(fairness), "favourable rates per group"),
        table_html(plotting.readable_table(fairness).T),
    ]
    perturbation = e.details.get("perturbation")
    if perturbation is not None and not perturbation.empty:
        parts += [
            "<h3>Perturbation check: decisions that change when only the protected attribute changes</h3>",
            table_html(perturbation),
        ]
    return parts + _companions(e)


def _drift(e) -> list[str]:
    """Drifted features, their p-values, the classifier test and the model-drift estimate (no drift: nothing)."""
    data_drift = e.details.get("data_drift")
    if data_drift is None:
        return []
    drifted = ", ".join(data_drift.drifted) or "none"
    parts = [
        "<h2>Drift</h2>",
        f"<p>Drifted features: {html.escape(drifted)} ({data_drift.drifted_share:.0%} of features).</p>",
        image_html(plotting.drift_p_values(data_drift.features, data_drift.threshold), "drift p-values"),
        table_html(data_drift.features),
    ]
    joint = e.details.get("multivariate_drift")
    if joint is not None:
        parts.append(
            f"<p>Multivariate (classifier) drift: {html.escape(_p_text(joint.p_value))}, distance {joint.distance:.3f} "
            f"({joint.records} window and {joint.reference_records} reference records).</p>"
        )
    model_drift = e.details.get("model_drift")
    if model_drift is not None:
        parts += ["<h3>Model drift: accuracy without labels</h3>", table_html(model_drift)]
    return parts


def _performance(e) -> list[str]:
    """The performance monitor's section: requests, records, rate and latency percentiles, rejections by reason."""
    found = e.measurements[(e.measurements["monitor"] == "performance") & e.measurements["subject"].isna()]
    if found.empty:
        return []
    parts = ["<h2>Performance: requests, latency, rejections</h2>", table_html(found.set_index("metric")[["value"]])]
    rejections = e.details.get("rejections")
    if rejections is not None and not rejections.empty:
        parts += ["<h3>Rejected requests and rows by reason</h3>", table_html(rejections)]
    return parts


def render_report(evaluation, history: pd.DataFrame | None = None, *, thresholds=None) -> str:
    """The HTML of the report of an :class:`utils.monitoring.Evaluation` (``history``: stored measurements;
    ``thresholds``: the :class:`~utils.monitoring.Thresholds` it was judged by, whose rules the verdicts state).

    A monitor that gave no verdict says why, from the evaluation's ``statuses`` (each monitor's own status).
    """
    e = evaluation
    parts = [*_overview(e, history, thresholds), *_fairness(e), *_drift(e), *_performance(e)]
    parts.append(
        '<p class="muted">How to read this report: docs/monitoring.md. Drift detection uses alibi-detect, under the '
        "Business Source License 1.1: free for this workshop's educational use, not for most production use.</p>"
    )
    return html_page(f"Monitoring report: {e.deployment_name} {e.window}", parts)


def html_page(title: str, parts: list[str]) -> str:
    """A self-contained HTML page in the reports' style: ``title`` (text) and ``parts`` (HTML) in order."""
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style>'
    body = "\n".join(parts)
    return f'<!doctype html>\n<html lang="en"><head>{head}</head><body>\n{body}\n</body></html>\n'


def write_report(evaluation, path: str | os.PathLike, *, history: pd.DataFrame | None = None, thresholds=None) -> Path:
    """Write the report of ``evaluation`` to ``path`` atomically (see :func:`render_report`); returns the path."""
    return write_text_atomically(path, render_report(evaluation, history, thresholds=thresholds))
