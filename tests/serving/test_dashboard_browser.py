"""The insights dashboard end to end: headless Chromium (Debian's, driven by Playwright) against the real server, on
a workspace with four monitored days of simulated traffic (drift growing from the second day)."""

from __future__ import annotations

import re

import pytest

from utils import datamart
from utils.dashboard import status
from utils.deployment import deploy
from utils.serving import start_server
from utils.workspace import monitor_workspace

pytestmark = pytest.mark.slow  # a real server and a browser (the fixture skips where chromium is absent)
DAYS = 4


@pytest.fixture(scope="module")
def site(workspace):
    """The server on a workspace whose ``credit-risk`` deployment was monitored for four days, beside a second
    deployment (``credit-risk-challenger``, never monitored)."""
    quiet = deploy(
        "credit-risk-v2", name="credit-risk-challenger", engine=workspace.engine, registry=workspace.registry
    )
    with start_server(
        work=workspace.work, datamart_url=workspace.datamart_url, api_key="", access_log=False, timeout=120
    ) as server:
        drift = [0.0, 0.3, 0.6, 0.9]
        evaluations = monitor_workspace(workspace, server.url, days=DAYS, records_per_day=250, drift=drift)
        yield server, workspace, quiet, evaluations


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"the page's scripts failed: {errors}"


def _points(page, index: int = 0) -> int:
    """How many windows the ``index``-th chart of the page draws (its first line)."""
    return page.eval_on_selector_all("[data-figure]", f"charts => charts[{index}].data[0].x.length")


def test_the_overview_lists_every_deployment_with_the_alerts_the_measurements_table_holds(site, page):
    server, workspace, quiet, evaluations = site
    page.goto(f"{server.url}/dashboard")
    tiles = page.locator("[data-deployment]")
    shown = [tiles.nth(i).get_attribute("data-deployment") for i in range(tiles.count())]
    assert sorted(shown) == sorted(d["deployment_id"] for d in datamart.read_deployments(workspace.engine))
    measured = datamart.read_measurements(workspace.engine)
    for deployment_id in shown:
        own = measured[measured["deployment_id"] == deployment_id]
        stored = int((status.alerting_rows(own) & own["breached"].fillna(False).astype(bool)).sum())
        tile = page.locator(f'[data-deployment="{deployment_id}"]')
        assert int(tile.locator("[data-alerts]").inner_text()) == stored
    monitored = page.locator(f'[data-deployment="{workspace.deployment.deployment_id}"]')
    assert int(monitored.locator("[data-open-alerts]").inner_text()) == len(evaluations[-1].alerts) > 0
    assert shown[0] == workspace.deployment.deployment_id  # open alerts come first
    assert "never evaluated" in page.locator(f'[data-deployment="{quiet.deployment_id}"]').inner_text()


def test_choosing_a_window_changes_the_charts(site, page):
    server, workspace, _, _ = site
    page.goto(f"{server.url}/dashboard/deployments/{workspace.deployment.deployment_id}")
    page.wait_for_function("document.querySelector('[data-figure]').data !== undefined")
    assert _points(page) == DAYS
    assert page.locator("#windows tr").count() == DAYS + 1
    page.fill("#start", "2026-01-06")
    page.fill("#end", "2026-01-08")
    page.click("#apply")
    page.wait_for_url(re.compile(r"start=2026-01-06&end=2026-01-08"))
    page.wait_for_function("document.querySelector('[data-figure]').data !== undefined")
    assert _points(page) == 2
    assert page.locator("#windows tr").count() == 3
    # A drag across a chart's time axis picks the window too.
    page.eval_on_selector(
        "[data-figure]",
        "chart => Plotly.relayout(chart, {'xaxis.range[0]': '2026-01-07', 'xaxis.range[1]': '2026-01-07 12:00'})",
    )
    page.wait_for_url(re.compile(r"start=2026-01-07&end=2026-01-08"))
    page.wait_for_function("document.querySelector('[data-figure]').data !== undefined")
    assert _points(page) == 1


def test_a_transactions_explanation_opens_from_the_list(site, page):
    server, workspace, _, _ = site
    page.goto(f"{server.url}/dashboard/deployments/{workspace.deployment.deployment_id}/transactions")
    page.select_option("#prediction", "Risk")
    page.click("#filters button")
    page.wait_for_url(re.compile(r"prediction=Risk"))
    first = page.locator("#transactions a.id").first
    transaction_id = first.inner_text()
    first.click()
    page.wait_for_selector("#decision")
    assert "Risk" in page.inner_text("#decision")
    assert page.locator("#reasons li").count() >= 1
    assert page.locator("#contributions tr").count() == 21  # a header and the 20 features
    stored = datamart.read_transaction(workspace.engine, transaction_id)
    assert f"{stored['probability_risk']:.3f}" in page.inner_text("#decision")


def test_a_transactions_explanation_opens_by_its_id(site, page):
    server, workspace, _, _ = site
    stored = datamart.read_payload(workspace.engine, workspace.deployment.deployment_id)
    row = stored[stored["prediction"] == "No Risk"].iloc[-1]
    page.goto(f"{server.url}/dashboard")
    page.fill("#search", row["transaction_id"])
    page.press("#search", "Enter")
    page.wait_for_selector("#decision")
    assert "No Risk" in page.inner_text("#decision")
    assert f"{1 - row['probability_risk']:.3f}" in page.inner_text("#decision")
    assert page.is_visible("#counterfactual")
    page.fill("#transaction_id", "no-such-transaction")
    page.click("#explain")
    page.wait_for_selector("#problem")
    assert "no transaction" in page.inner_text("#problem")


def test_the_fairness_details_lead_to_the_refused_applicants_whose_decision_flips(site, page):
    server, workspace, _, evaluations = site
    deployment_id = workspace.deployment.deployment_id
    page.goto(
        f"{server.url}/dashboard/deployments/{deployment_id}/evaluations/{evaluations[-1].evaluation_id}/fairness"
    )
    assert page.locator("table.fairness").count() == 2  # Sex and Age
    page.click('[data-biased="Sex"]')
    page.wait_for_selector("#count")
    rows = page.locator("#transactions tr")
    for i in range(1, rows.count()):
        cells = rows.nth(i).locator("td")
        assert cells.nth(2).inner_text() == "Risk" and cells.nth(4).inner_text() == "yes"
        assert cells.nth(5).inner_text() == "female"
