"""The pre-production risk evaluation, through the real scoring service on a free port."""

from __future__ import annotations

import json

import pytest

from utils import datamart, lifecycle
from utils.data import FEATURES
from utils.decision import risk_probability
from utils.deployment import ProductionCheckError, deploy
from utils.evaluation import criteria_from, evaluate_deployment, model_figures
from utils.serving import start_server
from utils.traffic import shift_applicants

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(workspace):
    with start_server(work=workspace.work, datamart_url=workspace.datamart_url, access_log=False) as running:
        yield running


@pytest.fixture(scope="module")
def candidate(workspace):
    """credit-risk-v2 (gradient boosting) deployed in preprod."""
    return deploy(
        "credit-risk-v2", name="credit-risk", space="preprod", engine=workspace.engine, registry=workspace.registry
    )


@pytest.fixture(scope="module")
def evaluated(workspace, server, candidate):
    """The candidate evaluated against credit-risk-v1 as its challenger, on the workspace's test split."""
    return evaluate_deployment(
        candidate.deployment_id,
        server.url,
        baseline_model_id="credit-risk-v1",
        baseline_role="challenger",
        work=workspace.work,
        engine=workspace.engine,
        explain=2,
    )


def test_the_test_data_went_through_the_endpoint_into_the_payload_log(workspace, candidate, evaluated):
    start, end = evaluated.window
    logged = datamart.read_payload(workspace.engine, candidate.deployment_id, start=start, end=end)
    assert len(logged) == len(workspace.test) == evaluated.rows
    feedback = datamart.read_window(workspace.engine, candidate.deployment_id, start, end, feedback=True)
    assert len(feedback) == len(workspace.test)
    assert feedback["logged_probability_risk"].notna().all()  # each label names the transaction it labels


def test_candidate_and_baseline_are_measured_on_the_same_rows_by_the_same_rules(workspace, evaluated):
    offline = risk_probability(workspace.registry.load("credit-risk-v2"), workspace.test[list(FEATURES)])
    expected = model_figures(workspace.test, offline)
    for name, value in expected.items():
        assert evaluated.figures["credit-risk-v2"][name] == pytest.approx(value, nan_ok=True), name
    table = evaluated.comparison.set_index("metric")
    assert table.loc["auc_roc", "baseline"] == pytest.approx(evaluated.figures["credit-risk-v1"]["auc_roc"])
    assert set(table.index) >= {"auc_roc", "disparate_impact[Sex]", "disparate_impact[Age]"}


def test_the_verdict_follows_the_criteria_the_checks_and_the_monitors(evaluated):
    judged = evaluated.comparison["passed"]
    expected_pass = (judged != False).all() and evaluated.checks.passed and evaluated.monitoring.alerts.empty  # noqa: E712
    assert evaluated.passed == expected_pass
    assert evaluated.verdict == evaluated.record.verdict
    assert (evaluated.verdict == "passed") == (evaluated.reasons == [])
    # a challenger is shown beside the candidate, but is no bar: no change judged, no per-group regression
    assert evaluated.comparison["reason"].str.contains("against the baseline").sum() == 0
    assert evaluated.checks.champion_id is None


def test_the_evaluation_is_recorded_with_its_measurements_and_reports(workspace, candidate, evaluated):
    record = lifecycle.get_evaluation(evaluated.evaluation_id, engine=workspace.engine)
    assert (record.model_id, record.space, record.baseline_model_id) == ("credit-risk-v2", "preprod", "credit-risk-v1")
    assert record.summary["criteria"][0]["metric"] == "auc_roc"
    stored = datamart.read_measurements(workspace.engine, candidate.deployment_id)
    mine = stored[stored["evaluation_id"] == evaluated.evaluation_id]
    assert {"quality", "fairness", "drift", "model_risk", "model_checks"} <= set(mine["monitor"])
    baseline_auc = mine[(mine["metric"] == "auc_roc") & (mine["subject"] == "baseline")]["value"]
    assert baseline_auc.iloc[0] == pytest.approx(evaluated.figures["credit-risk-v1"]["auc_roc"])
    html, as_json = record.report_paths(workspace.work)
    page = html.read_text()
    assert f"verdict: {evaluated.verdict}" in page and "data:image/png;base64," in page
    document = json.loads(as_json.read_text())
    assert document["verdict"] == evaluated.verdict and len(document["explanations"]) == 2
    assert all(item["top_contributions"] for item in document["explanations"])


def test_a_failed_evaluation_names_why_and_cannot_be_approved(workspace, server, candidate):
    strict = criteria_from({"auc_roc": {"threshold": 0.999}})
    failed = evaluate_deployment(
        candidate.deployment_id,
        server.url,
        baseline_model_id="credit-risk-v1",
        criteria=strict,
        work=workspace.work,
        engine=workspace.engine,
        explain=0,
    )
    assert failed.verdict == "failed" and failed.baseline_role == "champion"
    assert failed.checks.champion_id == "credit-risk-v1"  # the champion is the per-group regression's reference
    assert any(reason.startswith("auc_roc: ") and "under the floor 0.999" in reason for reason in failed.reasons)
    with pytest.raises(lifecycle.LifecycleError, match="failed"):
        lifecycle.approve(
            "credit-risk-v2",
            failed.evaluation_id,
            approver="Grace Hopper",
            reason="looks fine",
            engine=workspace.engine,
            work=workspace.work,
        )
    with pytest.raises(ProductionCheckError, match="failed"):
        deploy("credit-risk-v2", name="credit-risk", space="prod", engine=workspace.engine, registry=workspace.registry)


def test_unknown_criteria_fields_and_roles_are_refused(workspace, server, candidate):
    with pytest.raises(ValueError, match="unknown field"):
        criteria_from({"auc_roc": {"floor": 0.9}})
    with pytest.raises(ValueError, match="baseline_role"):
        evaluate_deployment(candidate.deployment_id, server.url, baseline_role="rival", work=workspace.work)


def test_test_data_that_break_the_contract_are_refused_before_anything_is_sent(workspace, server, candidate):
    broken = workspace.test.assign(LoanPurpose="spaceship")
    before = len(datamart.read_payload(workspace.engine, candidate.deployment_id))
    with pytest.raises(ValueError, match="break the data contract"):
        evaluate_deployment(
            candidate.deployment_id, server.url, test=broken, work=workspace.work, engine=workspace.engine
        )
    assert len(datamart.read_payload(workspace.engine, candidate.deployment_id)) == before


def test_drift_fails_a_candidate_unless_it_is_expected(workspace, server, candidate):
    """Held-out data that drifted from training raise drift alerts: a failure, except for a retrained candidate
    evaluated on the drifted production records it was retrained for."""
    drifted = shift_applicants(workspace.test, 7, source=workspace.test, drift=1.0)
    options = {"test": drifted, "work": workspace.work, "engine": workspace.engine, "explain": 0}
    plain = evaluate_deployment(candidate.deployment_id, server.url, **options)
    assert any(reason.startswith("monitor alert: drift") for reason in plain.reasons)
    expected = evaluate_deployment(candidate.deployment_id, server.url, expect_drift=True, **options)
    assert not expected.monitoring.alerts[expected.monitoring.alerts["monitor"] == "drift"].empty
    assert not any(reason.startswith("monitor alert: drift") for reason in expected.reasons)
    assert expected.record.summary["drift_counted"] is False
