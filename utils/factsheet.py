"""A model version's factsheet: what it is for and what it is not, what it was trained on, how fair it was when it
was made, and what has happened to it since: its evaluations, the decisions on them, its deployments and its
latest monitoring status.

The facts come from two places: the metadata recorded with the version at registration (:mod:`utils.training`
computes the training data's description and the fairness figures) and the data mart's records of its life
(:func:`lifecycle_records`). :func:`build_factsheet` puts them into one JSON document, the metadata's keys
followed by ``intended_use``, ``limitations``, ``evaluations``, ``approvals``, ``deployments``, ``monitoring``
and ``factsheet_generated_at``; :func:`render_factsheet` turns it into the Markdown model card a model validator
reads. The registry writes both files beside the model, at registration and after every change of those records
(:meth:`utils.registry.ModelRegistry.write_factsheet`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from utils import datamart
from utils.data import FOUR_FIFTHS_RULE, PROTECTED_GROUPS
from utils.decision import RISK_THRESHOLD
from utils.times import utc_now

#: What a version is for, unless its metadata records its own ``intended_use``.
INTENDED_USE = (
    "Scores loan applicants described by the 20 German-credit features: the probability that lending to them is "
    "a risk, and the decision it implies. Made for teaching trusted-AI practice (evaluation, approval, monitoring) "
    "to data scientists, model validators and loan officers in a workshop."
)
#: Monitoring status of a serving deployment: an alerting measurement breached its threshold; none did; none had
#: enough records for a verdict; nothing measured since this version began serving it.
ALERT, OK, NO_VERDICT, NOT_MONITORED = "alert", "ok", "no verdict", "not monitored yet"
_FIGURES = {
    "training_data": "the training data's outcomes",
    "test_decisions": "the model's decisions on the test split",
}
_MEASURED = ("monitor", "metric", "subject", "value", "threshold", "breached", "records")


def _plain(row: dict, leave_out: tuple[str, ...] = ()) -> dict:
    """A data mart row as JSON values: times in ISO 8601 (UTC)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items() if k not in leave_out}


def _monitoring_status(engine: Engine, period: dict) -> dict:
    """The newest monitor measurements of a deployment since ``period`` (this version serving it) began."""
    rows = datamart.read_latest_measurements(engine, period["deployment_id"], since=period["started_at"])
    verdicts = [row["breached"] for row in rows if row["breached"] is not None]
    status = NOT_MONITORED if not rows else ALERT if any(verdicts) else OK if verdicts else NO_VERDICT
    newest = rows[0] if rows else {}
    return {
        **{k: period[k] for k in ("deployment_id", "name", "space")},
        "serving_since": period["started_at"].isoformat(),
        "status": status,
        **_plain({k: newest.get(k) for k in ("evaluation_id", "evaluated_at", "window_start", "window_end")}),
        "alerts": [_plain({k: row[k] for k in _MEASURED[:5]}) for row in rows if row["breached"]],
        "measurements": [_plain({k: row[k] for k in _MEASURED}) for row in rows],
    }


def lifecycle_records(engine: Engine, model_id: str) -> dict:
    """What the data mart holds about ``model_id``: every evaluation (with its verdict), every approval decision
    (``superseded`` marked), every period it served a deployment (space, from, until), and the latest monitoring
    status of each deployment it serves now."""
    periods = datamart.read_deployment_history(engine, model_id=model_id)
    return {
        "evaluations": [_plain(row) for row in datamart.read_evaluations(engine, model_id=model_id)],
        "approvals": [_plain(row) for row in datamart.read_approvals(engine, model_id=model_id)],
        "deployments": [_plain(row, ("history_id",)) for row in periods],
        "monitoring": [_monitoring_status(engine, period) for period in periods if period["ended_at"] is None],
    }


def _fairness_limitations(fairness: dict) -> list[str]:
    found = []
    for source, what in _FIGURES.items():
        for attribute, figures in fairness.get(source, {}).items():
            impact = figures.get("disparate_impact")
            if impact is not None and impact < FOUR_FIFTHS_RULE:
                found.append(
                    f"In {what}, applicants of {attribute} {figures['monitored']} get the favourable outcome at "
                    f"{impact:.2f} times the rate of {figures['reference']}: below the four-fifths rule "
                    f"({FOUR_FIFTHS_RULE:.2f})."
                )
    return found


def limitations(metadata: dict) -> list[str]:
    """What the version must not be relied on for, computed from its metadata where it can be."""
    found = [
        "Trained and evaluated on German-credit-style data for teaching; not validated for real lending decisions.",
        f"A decision is `Risk` when the probability of `Risk` is above {RISK_THRESHOLD:g}; every figure here holds "
        "for that threshold only.",
    ]
    data = metadata.get("training_data", {})
    if data.get("rows"):
        found.append(
            f"It knows what {data['rows']:,} training rows show: inputs outside their ranges are scored but flagged "
            "`out_of_range`, and deserve a person's look."
        )
    protected = [f"`{name}`" for name in PROTECTED_GROUPS if name in metadata.get("features", ())]
    if protected:
        found.append(
            f"It takes {' and '.join(protected)} as inputs: its decisions may depend on them directly (the fairness "
            "monitor's perturbation check measures how much)."
        )
    if metadata.get("fairness"):
        found += _fairness_limitations(metadata["fairness"])
    else:
        found.append("Its fairness when it was made is not recorded: measure it before relying on its decisions.")
    return found


def build_factsheet(metadata: dict, records: dict | None = None, *, generated_at: datetime | None = None) -> dict:
    """The factsheet of a version as one JSON document: its ``metadata``, intended use, limitations and the
    data mart's ``records`` (:func:`lifecycle_records`; none at registration)."""
    records = records or {"evaluations": [], "approvals": [], "deployments": [], "monitoring": []}
    return {
        **metadata,
        "intended_use": metadata.get("intended_use", INTENDED_USE),
        "limitations": limitations(metadata),
        **records,
        "factsheet_generated_at": (generated_at or utc_now()).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- Markdown


class _Raw(str):
    """A table cell made already (code, or cells joined), which :func:`_table` does not escape again."""


def _cell(value) -> str:
    """A value in a Markdown table cell: numbers to three decimals, text that cannot break the table or add HTML."""
    if isinstance(value, _Raw):
        return value
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(text.split())


def _code(value) -> str:
    """An id, hash or file name as code (– for none)."""
    if value is None:
        return "–"
    return _Raw("`" + " ".join(str(value).replace("`", "'").replace("|", "\\|").split()) + "`")


def _when(moment: str | None) -> str:
    """An ISO 8601 time to the second, as ``2026-01-05 14:03:09+00:00``, or – for none."""
    return "–" if not moment else datetime.fromisoformat(moment).isoformat(sep=" ", timespec="seconds")


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]


def _pairs(mapping: dict, header: tuple[str, str]) -> list[str]:
    return _table(header, list(mapping.items())) if mapping else ["Not recorded with this version."]


def _fairness(fairness: dict) -> list[str]:
    if not fairness:
        return ["Not recorded with this version (it was registered without its training and test splits)."]
    lines = []
    for source, what in _FIGURES.items():
        labelled = source == "test_decisions"  # decisions beside true outcomes: equal opportunity too
        rows = [
            (
                attribute,
                _Raw(f"{_cell(f['monitored'])} vs {_cell(f['reference'])}"),
                _Raw(f"{_cell(f['favourable_rate_monitored'])} vs {_cell(f['favourable_rate_reference'])}"),
                f.get("disparate_impact"),
                f.get("statistical_parity_difference"),
            )
            + ((f.get("equal_opportunity_difference"),) if labelled else ())
            for attribute, f in fairness.get(source, {}).items()
        ]
        header = ("attribute", "groups", "favourable rates", "disparate impact", "parity difference")
        header += ("equal opportunity difference",) if labelled else ()
        lines += [f"Of {what}:", "", *_table(header, rows), ""] if rows else []
    return lines + [f"Disparate impact below {FOUR_FIFTHS_RULE:.2f} breaks the four-fifths rule."]


def _evaluations(evaluations: list[dict]) -> list[str]:
    if not evaluations:
        return ["None yet."]
    rows = []
    for e in evaluations:
        summary = _Raw(
            ", ".join(
                f"{_cell(name)} {_cell(value)}"
                for name, value in e["summary"].items()
                if isinstance(value, int | float | str)
            )
        )
        rows.append(
            (_when(e["created_at"]), _code(e["evaluation_id"]), e["space"], e["baseline_model_id"], e["verdict"])
            + (summary, _code(e["report_html"]))
        )
    return _table(("when", "evaluation", "space", "compared with", "verdict", "figures", "report"), rows)


def _approvals(approvals: list[dict]) -> list[str]:
    if not approvals:
        return ["None yet."]
    rows = [
        (_when(a["created_at"]), _code(a["evaluation_id"]), a["decision"], a["approver"], a["reason"])
        + ("superseded" if a["superseded"] else "counts",)
        for a in approvals
    ]
    lines = _table(("when", "evaluation", "decision", "approver", "reason", "status"), rows)
    return [*lines, "", "A decision is never changed: a newer one on the same evaluation supersedes it."]


def _deployments(periods: list[dict]) -> list[str]:
    if not periods:
        return ["Never deployed."]
    rows = [
        (_code(p["deployment_id"]), p["name"], p["space"], _when(p["started_at"]))
        + (_when(p["ended_at"]) if p["ended_at"] else "serving", p["deployed_by"], p["reason"])
        for p in periods
    ]
    return _table(("deployment", "name", "space", "from", "until", "by", "reason"), rows)


def _monitoring(statuses: list[dict]) -> list[str]:
    if not statuses:
        return ["No deployment serves this version now."]
    lines = []
    for s in statuses:
        place = f"{_code(s['name'])} in {_cell(s['space'])} (deployment {_code(s['deployment_id'])})"
        if s["status"] == NOT_MONITORED:
            lines += [f"- {place}: {NOT_MONITORED} since it began serving on {_when(s['serving_since'])}.", ""]
            continue
        window = f"window {_when(s['window_start'])} .. {_when(s['window_end'])}"
        lines += [f"- {place}: **{s['status']}**, {window}, evaluated {_when(s['evaluated_at'])}.", ""]
        verdicts = [m for m in s["measurements"] if m["threshold"] is not None]
        rows = [(m["monitor"], m["metric"], m["subject"], m["value"], m["threshold"], m["breached"]) for m in verdicts]
        lines += [*_table(("monitor", "metric", "subject", "value", "threshold", "breached"), rows), ""]
    return lines


def _training_data(record: dict) -> list[str]:
    data = record.get("training_data", {})
    rows = {
        "training data file": _code(data.get("file")),
        "training rows": data.get("rows"),
        "training data SHA-256": _code(data.get("sha256")),
        "schema SHA-256": _code(record.get("schema", {}).get("sha256")),
        "preprocessing SHA-256": _code(record.get("preprocessing", {}).get("sha256")),
        "model file SHA-256": _code(record.get("model_sha256")),
    }
    about = data.get("description")
    sentence = f"Training data: {about}" if about else "The training data's outcomes by group are not recorded."
    return [*_pairs({k: v for k, v in rows.items() if v not in (None, "–")}, ("what", "value")), "", sentence]


def render_factsheet(record: dict) -> str:
    """The Markdown model card of a factsheet document (:func:`build_factsheet`); copes with little metadata."""
    summary = {
        "model type": record.get("model_type"),
        "created": _when(record.get("created_at")),
        "predicts": "probability of `Risk` (classes in the order `No Risk`, `Risk`)",
        "facts as of": _when(record.get("factsheet_generated_at")),
    }
    lines = [
        f"# Model factsheet: {record['model_id']}",
        "",
        *_pairs(summary, ("", "")),
        "",
        "## Intended use",
        "",
        _cell(record.get("intended_use", INTENDED_USE)),
        "",
        "## Limitations",
        "",
        *(f"- {item}" for item in record.get("limitations") or limitations(record)),
        "",
        "## Training data and lineage",
        "",
        *_training_data(record),
        "",
        "## Hyperparameters",
        "",
        *_pairs(record.get("hyperparameters", {}), ("name", "value")),
        "",
        "## Evaluation on the held-out test split",
        "",
        *_pairs(record.get("metrics", {}), ("metric", "value")),
        "",
        f"Training: {record.get('convergence_note', 'not recorded')}.",
        "",
        "## Fairness at training time",
        "",
        *_fairness(record.get("fairness", {})),
        "",
    ]
    return "\n".join(lines + _life(record))


def _life(record: dict) -> list[str]:
    """The sections on what happened to the version: evaluations, decisions, deployments, monitoring."""
    sections = (
        ("Evaluations", _evaluations(record.get("evaluations", []))),
        ("Approval decisions", _approvals(record.get("approvals", []))),
        ("Deployments", _deployments(record.get("deployments", []))),
        ("Latest monitoring status", _monitoring(record.get("monitoring", []))),
    )
    return [line for title, body in sections for line in (f"## {title}", "", *body, "")]
