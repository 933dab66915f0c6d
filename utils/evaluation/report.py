"""The model-risk report of an evaluation: a self-contained HTML page (plots embedded) and the same as JSON."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pandas as pd

from utils import plotting
from utils.data import write_text_atomically
from utils.report import html_page, image_html, measurement_table, table_html, verdict_table


def _heading(result) -> list[str]:
    d = result.deployment
    baseline = (
        f"{html.escape(result.baseline_model_id)} (the {result.baseline_role})"
        if result.baseline_model_id
        else "none (the candidate is judged on its own)"
    )
    verdict = "ok" if result.passed else "bad"
    parts = [
        f"<h1>Model-risk evaluation: {html.escape(result.model_id)}</h1>",
        f'<p class="muted">Deployment {html.escape(d.name)} in {html.escape(d.space)}; evaluation '
        f"{html.escape(result.evaluation_id)}; {result.rows} labelled test records sent through its endpoint.</p>",
        f'<p class="gates"><span class="{verdict}">verdict: {result.verdict}</span></p>',
        f"<p>Compared with: {baseline}.</p>",
    ]
    if result.reasons:
        items = "".join(f"<li>{html.escape(reason)}</li>" for reason in result.reasons)
        parts.append(f"<p>Why it failed:</p><ul>{items}</ul>")
    return parts


def _comparison(result) -> list[str]:
    table = result.comparison.assign(
        passed=result.comparison["passed"].map({True: "yes", False: "no", None: "not judged"})
    )
    return [
        "<h2>Candidate against baseline</h2>",
        "<p>Each figure must clear its absolute bound and, against a champion, must not change by less than "
        "<em>min change</em> (negative: the loss tolerated), counted in the direction in which it is better. A "
        "challenger's figures are shown for comparison; they are not bars.</p>",
        table_html(table, index=False),
        image_html(plotting.evaluation_comparison(result.roc, result.figures), "ROC curves and favourable rates"),
    ]


def _checks_and_monitors(result) -> list[str]:
    checks = result.checks.table()
    alerts = result.monitoring.alerts
    expected = (
        "<p>The evaluation data are production records after a drift, which the candidate was retrained for: drift "
        "alerts are shown and do not fail it.</p>"
        if result.expect_drift
        else ""
    )
    return [
        "<h2>Model checks</h2>",
        table_html(checks, index=False),
        "<h2>Monitors on the evaluation traffic</h2>",
        expected,
        table_html(measurement_table(alerts), index=False) if not alerts.empty else "<p>No monitor alerted.</p>",
        table_html(verdict_table(result.monitoring), index=False),
    ]


def _explanations(result) -> list[str]:
    parts = ["<h2>Explained decisions</h2>"] if result.explanations else []
    for item in result.explanations:
        top = pd.DataFrame(item["top_contributions"]).set_index("feature")
        flip = item["flip"]
        changes = ", ".join(f"{c['feature']} {c['before']} → {c['after']}" for c in flip["changes"])
        after = f"{flip['decision_after']} ({flip['probability_risk_after']:.3f}) if {changes}" if flip["found"] else ""
        parts += [
            f"<h3>{html.escape(item['prediction'])}, probability of Risk {item['probability_risk']:.3f}</h3>",
            table_html(top),
            f"<p>Smallest change that flips it: {html.escape(after) if after else 'none found'}.</p>",
        ]
    return parts


def render_report(result) -> str:
    """The HTML of the report of a :class:`utils.evaluation.RiskEvaluation`."""
    parts = [*_heading(result), *_comparison(result), *_checks_and_monitors(result), *_explanations(result)]
    parts.append('<p class="muted">How to read this report: docs/evaluation.md.</p>')
    return html_page(f"Model-risk evaluation: {result.model_id}", parts)


def report_json(result) -> dict:
    """The report as JSON-ready values: the record's facts, the summary, every check and the explanations."""
    d = result.deployment
    return {
        "evaluation_id": result.evaluation_id,
        "model_id": result.model_id,
        "deployment": {"deployment_id": d.deployment_id, "name": d.name, "space": d.space},
        "baseline_model_id": result.baseline_model_id,
        "verdict": result.verdict,
        "window": [moment.isoformat() for moment in result.window],
        **result.summary(),
        "checks": result.checks.as_dict(),
        "explanations": result.explanations,
    }


def write_reports(result, html_path: str | os.PathLike, json_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write both reports atomically; returns their paths."""
    text = json.dumps(report_json(result), indent=2, allow_nan=False)
    return write_text_atomically(html_path, render_report(result)), write_text_atomically(json_path, text)
