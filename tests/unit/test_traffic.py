"""Simulated traffic: applicants drawn from a pool, the knobs on any data, and days of records sent through the real
server and stamped into their day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from utils import datamart, traffic
from utils.data import COLUMNS, FAVOURABLE, LABEL, UNFAVOURABLE, generate_credit_data
from utils.serving import start_server

START = datetime(2026, 3, 2, tzinfo=UTC)


def test_from_day_schedules_a_knob():
    assert traffic.from_day(5, 3, 0.4) == [0.0, 0.0, 0.4, 0.4, 0.4]
    assert traffic._per_day(0.2, 3, "drift") == [0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match="2 values for 3 days"):
        traffic._per_day([0.1, 0.2], 3, "drift")
    with pytest.raises(ValueError, match="between 0 and 1"):
        traffic._per_day(1.5, 2, "bias")


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    """Applicants generated unlike the generator's defaults (drifted, biased, other seed), indexed from 100."""
    frame = generate_credit_data(1200, 77, drift=0.7, bias=0.2).drop_duplicates()
    return frame.set_index(pd.RangeIndex(100, 100 + len(frame)))


def _risky(frame: pd.DataFrame) -> float:
    return float((frame[LABEL] == UNFAVOURABLE).mean())


def test_applicants_are_drawn_from_the_pool_without_repeats(pool):
    drawn = traffic.applicants(500, 3, pool=pool)
    assert list(drawn.columns) == list(COLUMNS) and drawn.dtypes.equals(pool[list(COLUMNS)].dtypes)
    rows = drawn.merge(pool, how="left", indicator=True)
    assert (rows["_merge"] == "both").all(), "every applicant is one of the pool's, unchanged"
    assert not drawn.duplicated().any()
    assert (drawn["Sex"] == "female").mean() == pytest.approx((pool["Sex"] == "female").mean(), abs=0.01)
    assert drawn.equals(traffic.applicants(500, 3, pool=pool)) and not drawn.equals(
        traffic.applicants(500, 4, pool=pool)
    )
    assert len(traffic.applicants(3000, 3, pool=pool)) == 3000, "more than the pool has: with repeats"


def test_drift_shifts_the_pool_within_its_ranges(pool):
    plain = traffic.applicants(500, 5, pool=pool)
    drifted = traffic.applicants(500, 5, drift=0.5, pool=pool)
    assert drifted["LoanAmount"].median() > 1.3 * plain["LoanAmount"].median()
    assert drifted["LoanDuration"].median() > plain["LoanDuration"].median()
    assert drifted["Age"].between(18, 25).mean() > plain["Age"].between(18, 25).mean() + 0.1
    for column in ("LoanAmount", "LoanDuration", "Age"):
        assert drifted[column].between(pool[column].min(), pool[column].max()).all()
    pd.testing.assert_frame_equal(
        drifted.drop(columns=["LoanAmount", "LoanDuration", "Age"]),
        plain.drop(columns=["LoanAmount", "LoanDuration", "Age"]),
    )


def test_group_drift_changes_only_the_monitored_group(pool):
    plain = traffic.applicants(500, 5, pool=pool)
    shifted = traffic.applicants(500, 5, group_drift=0.9, pool=pool)
    women = plain["Sex"] == "female"
    assert (shifted["Sex"] == "female").equals(women)
    pd.testing.assert_frame_equal(shifted[~women], plain[~women])
    assert _risky(shifted[women]) > _risky(plain[women]) + 0.25, "the group applies with riskier profiles"
    assert shifted.loc[women, "LoanAmount"].median() > 1.3 * plain.loc[women, "LoanAmount"].median()
    assert shifted.dtypes.equals(plain.dtypes)


def test_knobs_refuse_what_they_cannot_do(pool):
    with pytest.raises(ValueError, match="between 0 and 1"):
        traffic.applicants(10, 1, group_drift=1.5, pool=pool)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['Risk'\]"):
        traffic.applicants(10, 1, pool=pool.drop(columns=LABEL))
    good_women = pool[(pool["Sex"] == "male") | (pool[LABEL] == FAVOURABLE)]
    with pytest.raises(ValueError, match="needs applicants of the monitored Sex group with outcome Risk"):
        traffic.applicants(10, 1, group_drift=1.0, pool=good_women)


def test_label_bias_changes_the_outcomes_of_the_monitored_group_only():
    plain = traffic.applicants(2000, 6)
    biased = traffic.applicants(2000, 6, label_bias=0.6)
    assert traffic.shift_applicants(plain, 1).equals(plain), "no knob, no change"
    women = plain["Sex"] == "female"
    assert (biased.loc[women, LABEL] == FAVOURABLE).mean() < 0.6 * (plain.loc[women, LABEL] == FAVOURABLE).mean()
    pd.testing.assert_frame_equal(biased.drop(columns=LABEL), plain.drop(columns=LABEL))


def test_concept_turns_good_outcomes_of_long_or_large_loans_risky_only(pool):
    plain = traffic.applicants(800, 8, drift=0.5, pool=pool)
    changed = traffic.applicants(800, 8, drift=0.5, concept=0.6, pool=pool)
    pd.testing.assert_frame_equal(changed.drop(columns=LABEL), plain.drop(columns=LABEL))
    limits = {column: pool[column].quantile(traffic.CONCEPT_QUANTILE) for column in traffic.LOAN_GROWTH}
    segment = (plain["LoanDuration"] > limits["LoanDuration"]) | (plain["LoanAmount"] > limits["LoanAmount"])
    flipped = changed[LABEL] != plain[LABEL]
    assert not flipped[~segment].any(), "outside long or large loans, no outcome changes"
    assert (plain.loc[flipped, LABEL] == FAVOURABLE).all() and (changed.loc[flipped, LABEL] == UNFAVOURABLE).all()
    good_in_segment = segment & (plain[LABEL] == FAVOURABLE)
    assert 0.5 < flipped[good_in_segment].mean() < 0.7, "about the share asked for"
    everything = traffic.applicants(800, 8, drift=0.5, concept=1.0, pool=pool)
    assert (everything.loc[segment, LABEL] == UNFAVOURABLE).all()
    with pytest.raises(ValueError, match="concept must be between 0 and 1"):
        traffic.applicants(10, 1, concept=1.5, pool=pool)


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
    days_seen = []

    def progress(days):
        days_seen.extend(days)
        return days_seen

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
            pool=workspace.test,
            progress=progress,
        )
    assert list(plan.index) == [1, 2] and days_seen == [1, 2]
    assert plan[["records", "feedback"]].to_numpy().tolist() == [[60, 30], [60, 30]]
    assert plan["drift"].tolist() == [0.0, 0.5] and plan.loc[2, "start"] == START + timedelta(days=1)
    for day in (0, 1):
        begin, end = START + timedelta(days=day), START + timedelta(days=day + 1)
        payload = datamart.read_payload(engine, deployment.deployment_id, begin, end)
        feedback = datamart.read_feedback(engine, deployment.deployment_id, begin, end)
        assert (len(payload), len(feedback)) == (60, 30)
        assert payload["scored_at"].is_monotonic_increasing
        sent = traffic.applicants(60, 3 + day + 1, drift=[0.0, 0.5][day], pool=workspace.test)
        assert payload["LoanAmount"].tolist() == sent["LoanAmount"].tolist()  # the day's applicants, in order
        assert np.isclose(plan.loc[day + 1, "favourable_rate"], (payload["prediction"] == FAVOURABLE).mean())
        assert set(feedback["label"]) <= {"No Risk", "Risk"}
        assert set(feedback["recorded_at"]) <= set(payload["scored_at"])
    assert len(datamart.read_payload(engine, deployment.deployment_id)) == 120  # nothing left at the real time


def test_split_pool_gives_two_disjoint_parts_alike_in_outcomes_and_loans():
    pool = generate_credit_data(1000, seed=5)
    first, second = traffic.split_pool(pool, 0.3)
    assert (len(first), len(second)) == (700, 300)
    both = pd.concat([first, second]).sort_values(list(pool.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, pool.sort_values(list(pool.columns)).reset_index(drop=True))
    assert (first[LABEL] == UNFAVOURABLE).mean() == pytest.approx((second[LABEL] == UNFAVOURABLE).mean(), abs=0.01)
    for column in ("LoanDuration", "LoanAmount"):
        assert first[column].mean() == pytest.approx(second[column].mean(), rel=0.03)
    with pytest.raises(ValueError, match="share must be between 0 and 1"):
        traffic.split_pool(pool, 1.0)


def test_shifted_loans_stay_within_the_source_given():
    pool = generate_credit_data(400, seed=6)
    part = pool[pool["LoanAmount"] < pool["LoanAmount"].median()]
    own = traffic.applicants(len(part), 1, drift=1.0, pool=part)
    wider = traffic.applicants(len(part), 1, drift=1.0, pool=part, source=pool)
    assert own["LoanAmount"].max() == part["LoanAmount"].max()
    assert wider["LoanAmount"].max() > part["LoanAmount"].max()
    assert wider["LoanAmount"].max() <= pool["LoanAmount"].max()
