"""The monitoring report: readable numbers, verdicts that say why, tables that stay on the page, when it is written."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from utils import datamart, monitoring
from utils.monitoring.results import Evaluation, Measurements, MonitorResult, Thresholds, measurement_frame
from utils.report import WHOLE_WINDOW, render_report, verdict_table, write_report

START = datetime(2026, 1, 9, tzinfo=UTC)
END = datetime(2026, 1, 10, tzinfo=UTC)


_VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Tables(HTMLParser):
    """The text of each cell of each table of a page, and the classes of the elements around each table."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.around: list[list[str]] = []
        self._open: list[tuple[str, str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
            self.around.append([css for _, css in self._open])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag not in _VOID:
            self._open.append((tag, dict(attrs).get("class") or tag))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        names = [name for name, _ in self._open]
        if tag in names:  # close it, and anything left open inside it
            del self._open[len(names) - 1 - names[::-1].index(tag) :]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables_of(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


def rows_of(table: list[list[str]]) -> list[dict[str, str]]:
    header, *rows = table
    return [dict(zip(header, row)) for row in rows]


def section_table(page: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table after the ``<h2>`` ``heading``."""
    return rows_of(tables_of(page[page.index(f"<h2>{heading}</h2>") :]).tables[0])


def evaluation(*, di=0.757, low=0.70, high=0.82, p_value=0.12, breached=False) -> Evaluation:
    """A window with one disparate impact verdict (Age), and drift alerts that have no subject."""
    fairness = Measurements("fairness")
    fairness.add("disparate_impact", di, records=2000, subject="Age", threshold=0.8, breached=breached)
    fairness.add("disparate_impact_low", low, records=2000, subject="Age")
    fairness.add("disparate_impact_high", high, records=2000, subject="Age")
    fairness.add("disparate_impact_p_value", p_value, records=2000, subject="Age")
    drift = Measurements("drift")
    drift.add("drifted_share", 0.2, records=2000, threshold=0.0, breached=True)
    drift.add("classifier_drift_p_value", 3.274e-41, records=1000, threshold=0.01, breached=True)
    results = [MonitorResult("fairness", tuple(fairness.rows)), MonitorResult("drift", tuple(drift.rows))]
    return Evaluation(
        evaluation_id="e1",
        deployment_id="d1",
        deployment_name="credit-risk (dev)",
        model_id="credit-risk-v1",
        window_start=START,
        window_end=END,
        evaluated_at=END,
        payload_records=2000,
        feedback_records=0,
        measurements=measurement_frame(results),
    )


def test_values_show_three_decimals_and_p_values_readably():
    page = render_report(evaluation(di=0.67712), thresholds=Thresholds())
    verdicts = {row["metric"]: row for row in section_table(page, "Verdicts")}
    assert verdicts["disparate_impact"]["value"] == "0.677"
    assert verdicts["drifted_share"]["value"] == "0.200"
    assert verdicts["classifier_drift_p_value"]["value"] == "< 0.001"
    assert [row["value"] for row in section_table(page, "Alerts")] == ["0.200", "< 0.001"]
    assert not re.search(r"\de-\d", page), "no number in scientific notation"


def test_detail_tables_show_three_decimals_and_p_values_readably():
    e = evaluation()
    e.details["fairness"] = pd.DataFrame(
        {
            "monitored": ["18-25"],
            "reference": ["26-75"],
            "records_monitored": [775],
            "favourable_rate_monitored": [0.4748],
            "favourable_rate_reference": [0.6833],
            "disparate_impact": [0.67712],
            "p_value": [3.2e-5],
            "verdict": ["ALERT"],
        },
        index=pd.Index(["Age"], name="attribute"),
    )
    e.details["quality"] = {"auc_roc": 0.81389, "precision": 0.85391}
    page = render_report(e, thresholds=Thresholds())
    quality = {row[0]: row[1] for row in tables_of(page[page.index("<h2>Quality") :]).tables[0][1:]}
    assert quality == {"auc_roc": "0.814", "precision": "0.854"}
    fairness = {row[0]: row[1] for row in tables_of(page[page.index("<h2>Fairness</h2>") :]).tables[0][1:]}
    assert fairness["disparate_impact"] == "0.677" and fairness["favourable_rate_monitored"] == "0.475"
    assert fairness["p_value"] == "< 0.001" and fairness["records_monitored"] == "775"


def test_a_measurement_without_subject_is_the_whole_window_never_none():
    page = render_report(evaluation(), thresholds=Thresholds())
    for heading in ("Alerts", "Verdicts"):
        subjects = [row["subject"] for row in section_table(page, heading)]
        assert "None" not in subjects and "" not in subjects
        assert WHOLE_WINDOW in subjects
    assert "None" not in page


def test_the_verdict_states_the_interval_and_the_rule():
    """A disparate impact under 0.8 without evidence is "ok", and the verdict itself says why."""
    (row,) = [
        r
        for r in section_table(render_report(evaluation(), thresholds=Thresholds()), "Verdicts")
        if r["subject"] == "Age"
    ]
    assert row["verdict"] == "ok: DI 0.757, 95% interval [0.700, 0.820], p = 0.120; alert when DI < 0.8 and p < 0.05"
    alerted = evaluation(di=0.69, low=0.64, high=0.75, p_value=0.0004, breached=True)
    (row,) = [r for r in verdict_table(alerted, Thresholds()).itertuples() if r.metric == "disparate_impact"]
    assert row.verdict == "ALERT: DI 0.690, 95% interval [0.640, 0.750], p < 0.001; alert when DI < 0.8 and p < 0.05"


def test_the_rule_follows_the_thresholds_used():
    on_estimate = verdict_table(evaluation(), Thresholds(fairness_alpha=None))
    assert (
        on_estimate.loc[on_estimate["metric"] == "disparate_impact", "verdict"]
        .item()
        .endswith("p = 0.120; alert when DI < 0.8")
    )
    unstated = verdict_table(evaluation())
    assert "alert when" not in unstated.loc[unstated["metric"] == "disparate_impact", "verdict"].item()


def test_every_table_scrolls_sideways_instead_of_running_off_the_page(tmp_path):
    path = write_report(evaluation(), tmp_path / "report.html", thresholds=Thresholds())
    page = path.read_text()
    found = tables_of(page)
    assert len(found.tables) == 2
    assert all(around[-1] == "table" for around in found.around), "each table sits in a scrolling box"
    assert re.search(r"\.table\{[^}]*overflow-x:auto", page)


@pytest.fixture
def deployment_id(workspace, monkeypatch) -> str:
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)  # the workspace's own data mart
    return workspace.deployment.deployment_id


def html_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.rglob("*.html")}


def test_a_run_that_stores_nothing_writes_no_report(workspace, deployment_id):
    before = html_files(workspace.work)
    trial = monitoring.evaluate_all(deployment_id, START, END, work=workspace.work, store=False)
    assert trial.report_path is None and html_files(workspace.work) == before
    asked = workspace.work / "trial.html"
    explicit = monitoring.evaluate_all(deployment_id, START, END, work=workspace.work, store=False, report=asked)
    assert explicit.report_path == asked and asked.is_file(), "a report path asked for is written"
    stored = monitoring.evaluate_all(deployment_id, START, END, work=workspace.work)
    assert stored.report_path.parent == workspace.work / "reports" and stored.report_path.is_file()


def test_the_command_line_with_no_store_leaves_the_reports_alone(workspace, deployment_id, capsys):
    monitor = monitoring.DeploymentMonitor(deployment_id, work=workspace.work)
    stored = monitor.evaluate(START, END)
    stored.report_path.write_text("the stored window's report")
    arguments = ["--deployment-id", deployment_id, "--start", "2026-01-09", "--end", "2026-01-10"]
    assert monitoring.main([*arguments, "--work-dir", str(workspace.work), "--no-store"]) == 0
    assert "report: none written" in capsys.readouterr().out
    assert stored.report_path.read_text() == "the stored window's report"
