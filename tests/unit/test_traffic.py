"""Simulated traffic: the knobs, and days of records sent through the real server and stamped into their day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from utils import datamart, traffic
from utils.data import FAVOURABLE, LABEL, generate_credit_data
from utils.serving import start_server

START = datetime(2026, 3, 2, tzinfo=UTC)


def test_from_day_schedules_a_knob():
    assert traffic.from_day(5, 3, 0.4) == [0.0, 0.0, 0.4, 0.4, 0.4]
    assert traffic._per_day(0.2, 3, "drift") == [0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match="2 values for 3 days"):
        traffic._per_day([0.1, 0.2], 3, "drift")
    with pytest.raises(ValueError, match="between 0 and 1"):
        traffic._per_day(1.5, 2, "bias")


def test_group_drift_changes_only_the_monitored_group():
    plain = traffic.applicants(600, 5)
    shifted = traffic.applicants(600, 5, group_drift=1.0)
    women = plain["Sex"] == "female"
    assert (shifted["Sex"] == "female").sum() == women.sum()
    pd.testing.assert_frame_equal(shifted[~women], plain[~women])
    assert shifted.loc[women, "LoanAmount"].median() > 1.3 * plain.loc[women, "LoanAmount"].median()
    assert shifted.dtypes.equals(plain.dtypes)
    assert plain.equals(generate_credit_data(600, 5))


def test_label_bias_changes_the_outcomes_of_the_monitored_group_only():
    plain = traffic.applicants(2000, 6)
    biased = traffic.applicants(2000, 6, label_bias=0.6)
    women = plain["Sex"] == "female"
    assert (biased.loc[women, LABEL] == FAVOURABLE).mean() < 0.6 * (plain.loc[women, LABEL] == FAVOURABLE).mean()
    pd.testing.assert_frame_equal(biased.drop(columns=LABEL), plain.drop(columns=LABEL))


def test_restamp_moves_records_in_time(tmp_path):
    engine = datamart.connect(f"sqlite:///{tmp_path / 'mart.sqlite'}")
    record = {
        "transaction_id": "t1",
        "deployment_id": "d",
        "model_id": "m-v1",
        "scored_at": datetime.now(UTC),
        "inputs": {"Age": 30},
        "prediction": "No Risk",
        "probability_no_risk": 0.7,
        "probability_risk": 0.3,
    }
    datamart.insert_payload(engine, [record])
    assert datamart.restamp(engine, ["t1"], [START]) == 1
    assert datamart.read_payload(engine, "d", START, START + timedelta(seconds=1))["transaction_id"].tolist() == ["t1"]
    assert datamart.restamp(engine, [], []) == 0


@pytest.mark.slow
def test_days_of_traffic_through_the_real_server(workspace, monkeypatch):
    monkeypatch.delenv("CREDIT_API_KEY", raising=False)
    engine, deployment = workspace.engine, workspace.deployment
    url = workspace.datamart_url
    with start_server(work=workspace.work, datamart_url=url, api_key="k", access_log=False, timeout=120) as server:
        plan = traffic.simulate_traffic(
            server.url,
            deployment.deployment_id,
            days=2,
            records_per_day=60,
            start=START,
            drift=[0.0, 0.5],
            feedback_share=0.5,
            seed=3,
            api_key="k",
            engine=engine,
            batch_size=25,
        )
    assert list(plan.index) == [1, 2]
    assert plan[["records", "feedback"]].to_numpy().tolist() == [[60, 30], [60, 30]]
    assert plan["drift"].tolist() == [0.0, 0.5] and plan.loc[2, "start"] == START + timedelta(days=1)
    for day in (0, 1):
        begin, end = START + timedelta(days=day), START + timedelta(days=day + 1)
        payload = datamart.read_payload(engine, deployment.deployment_id, begin, end)
        feedback = datamart.read_feedback(engine, deployment.deployment_id, begin, end)
        assert (len(payload), len(feedback)) == (60, 30)
        assert payload["scored_at"].is_monotonic_increasing
        sent = traffic.applicants(60, 3 + day + 1, drift=[0.0, 0.5][day])
        assert payload["LoanAmount"].tolist() == sent["LoanAmount"].tolist()  # the day's applicants, in order
        assert np.isclose(plan.loc[day + 1, "favourable_rate"], (payload["prediction"] == FAVOURABLE).mean())
        assert set(feedback["label"]) <= {"No Risk", "Risk"}
        assert set(feedback["recorded_at"]) <= set(payload["scored_at"])
    assert len(datamart.read_payload(engine, deployment.deployment_id)) == 120  # nothing left at the real time
