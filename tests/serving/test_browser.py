"""The loan-officer form end to end: headless Chromium (Debian's, driven by Playwright) against the real server."""

from __future__ import annotations

import pytest

from utils import datamart
from utils.config import layout
from utils.dashboard.transactions import explain
from utils.data import CATEGORIES, CONTRACT_RANGES, FEATURES
from utils.deployment import deploy
from utils.scoring import Scorer, frame_columns
from utils.serving import start_server

pytestmark = pytest.mark.slow  # a real server and a browser (the fixture skips where chromium is absent)


@pytest.fixture(scope="module")
def site(workspace):
    """The workspace's v1 deployed again, in ``prod``, and a server without an API key."""
    deployment = deploy("credit-risk-v1", space="prod", engine=workspace.engine, registry=workspace.registry)
    scorer = Scorer(workspace.registry.load("credit-risk-v1"), "credit-risk-v1")
    with start_server(
        work=workspace.work, datamart_url=workspace.datamart_url, api_key="", access_log=False, timeout=120
    ) as server:
        yield server, workspace.engine, deployment, scorer, workspace.test


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
    low, _ = CONTRACT_RANGES["Age"]  # 12 is outside the contract, not only the training data
    page.eval_on_selector("#Age", "input => { input.removeAttribute('min'); input.value = '12'; }")
    page.click("#submit")
    page.wait_for_selector("#error-Age", state="visible")  # beside the field it names
    beside = page.inner_text("#error-Age")
    assert f"range [{low}," in beside and "row 0" in beside
    assert page.get_attribute("#Age", "aria-invalid") == "true"
    assert "correct the field" in page.inner_text("#message")
    assert not page.is_visible("#result")
    page.close()


def test_the_form_gives_the_top_reasons_and_what_would_change_the_decision(site, browser, workspace):
    server, engine, deployment, *_ = site
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector(f'#deployment option[value="{deployment.deployment_id}"]', state="attached")
    page.select_option("#deployment", deployment.deployment_id)
    assert page.inner_text('label[for="LoanDuration"]') == "Loan duration (months)"  # plain words with units
    page.click("#submit")
    page.wait_for_selector("#explanation", state="visible")
    reasons = page.eval_on_selector_all("#reasons li", "items => items.map(i => i.textContent)")
    transaction_id = page.inner_text("#transaction")
    decision = page.inner_text("#decision")
    explained = explain(engine, transaction_id, layout(workspace.work).train, workspace.registry.load)
    assert reasons == [reason["text"] for reason in explained["reasons"]] and 1 <= len(reasons) <= 3
    effect = "raised the risk" if decision == "Risk" else "lowered the risk"
    assert all(effect in reason for reason in reasons)
    assert page.inner_text("#change").startswith(explained["counterfactual"]["text"] or "No change")
    page.close()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda route: route.abort("connectionrefused"), "does not answer"),
        (lambda route: route.fulfill(status=502, body="<html>Bad Gateway</html>"), "HTTP 502"),
    ],
    ids=["down", "not-json"],
)
def test_the_form_says_when_the_service_is_down_or_answers_something_else(site, browser, answer, expected):
    server, *_ = site
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#deployment option", state="attached")
    page.route("**/ml/v4/deployments/*/predictions", answer)
    page.click("#submit")
    page.wait_for_selector("#message", state="visible")
    assert expected in page.inner_text("#message")
    assert not page.is_visible("#result")
    page.close()


def test_the_api_docs_render_and_try_it_out_scores_the_example(site, browser):
    server, engine, deployment, *_ = site
    before = len(datamart.read_payload(engine, deployment.deployment_id))
    page = browser.new_page()
    page.goto(f"{server.url}/docs")
    operation = page.locator(
        "#operations-Watson_Machine_Learning_v4-predictions_ml_v4_deployments__deployment_id__predictions_post"
    )
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    body = operation.locator("textarea.body-param__text")
    assert '"no_checking"' in body.input_value()  # the example applicant, pre-filled
    operation.locator('input[placeholder="deployment_id"]').fill(deployment.deployment_id)
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200", operation.locator(".live-responses-table").inner_text()
    assert "Unable to render this definition" not in page.content() and "Resolver error" not in page.content()
    assert len(datamart.read_payload(engine, deployment.deployment_id)) == before + 1
    page.close()
