"""The loan-officer form end to end: headless Chromium (Debian's, driven by Playwright) against the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from utils import datamart
from utils.data import CATEGORIES, FEATURES, NUMERIC_RANGES
from utils.deployment import deploy
from utils.scoring import Scorer, frame_columns
from utils.serving import start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"
    ),
]


@pytest.fixture(scope="module")
def site(workspace):
    """The workspace's v1 deployed again, in ``prod``, and a server without an API key."""
    deployment = deploy("credit-risk-v1", space="prod", engine=workspace.engine, registry=workspace.registry)
    scorer = Scorer(workspace.registry.load("credit-risk-v1"), "credit-risk-v1")
    with start_server(
        work=workspace.work, datamart_url=workspace.datamart_url, api_key="", access_log=False, timeout=120
    ) as server:
        yield server, workspace.engine, deployment, scorer, workspace.test


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_a_loan_officer_scores_one_applicant(site, browser):
    server, engine, deployment, scorer, applicants = site
    applicant = applicants.iloc[0]
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector(f'#deployment option[value="{deployment.deployment_id}"]', state="attached")
    assert "credit-risk (prod, credit-risk-v1)" in page.inner_text("#deployment")
    page.select_option("#deployment", deployment.deployment_id)
    assert not page.is_visible("#apikey")  # the server has no key
    for name in FEATURES:
        if name in CATEGORIES:
            assert page.eval_on_selector_all(f"#{name} option", "os => os.map(o => o.value)") == list(CATEGORIES[name])
            page.select_option(f"#{name}", str(applicant[name]))
        else:
            page.fill(f"#{name}", str(applicant[name]))
    page.click("#submit")
    page.wait_for_selector("#result", state="visible")

    labels, proba = scorer.predict(frame_columns(applicants.iloc[[0]]))
    decision = page.inner_text("#decision")
    assert decision == labels[0]
    assert page.inner_text("#probability") == f"{proba[0][0 if decision == 'No Risk' else 1]:.3f}"
    transaction_id = page.inner_text("#transaction")
    stored = datamart.read_payload(engine, deployment.deployment_id).set_index("transaction_id")
    assert stored.loc[transaction_id, "Age"] == applicant["Age"]
    page.close()


def test_the_form_shows_errors_with_their_field(site, browser):
    server, *_ = site
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#deployment option", state="attached")
    low, _ = NUMERIC_RANGES["Age"]
    page.eval_on_selector("#Age", "input => { input.removeAttribute('min'); input.value = '12'; }")
    page.click("#submit")
    page.wait_for_selector("#message", state="visible")
    message = page.inner_text("#message")
    assert f"out of range [{low}" in message and "field Age" in message and "row 0" in message
    assert not page.is_visible("#result")
    page.close()
