"""The comparison criteria of the risk evaluation (no server)."""

from __future__ import annotations

import math

import pytest

from utils.evaluation import DEFAULT_CRITERIA, MetricThreshold, compare, criteria_from


def test_an_absolute_floor_and_a_tolerated_loss_against_the_baseline():
    auc = MetricThreshold("auc_roc", threshold=0.80, min_change=-0.02)
    assert auc.judge(0.85, 0.86) == (True, "")
    passed, reason = auc.judge(0.83, 0.86)
    assert not passed and "changes by -0.030" in reason
    passed, reason = auc.judge(0.79, None)
    assert not passed and "under the floor 0.800" in reason
    assert auc.judge(math.nan, 0.8) == (None, "not measured")


def test_lower_is_better_and_an_ideal_value_beyond_which_nothing_counts():
    loss = MetricThreshold("log_loss", min_change=0.0, greater_is_better=False)
    assert loss.judge(0.40, 0.45)[0] and not loss.judge(0.46, 0.45)[0]
    impact = MetricThreshold("disparate_impact[Sex]", threshold=0.8, min_change=-0.05, ideal=1.0)
    assert impact.judge(0.95, 0.85)[0]  # nearer parity from below: better
    passed, reason = impact.judge(0.88, 0.95)
    assert not passed and "changes by -0.070 against the baseline's 0.950" in reason  # the monitored group lost
    assert impact.judge(0.97, 1.30)[0]  # a shortfall of 0.03 from parity, within the tolerance
    assert not impact.judge(0.90, 1.30)[0]  # a shortfall of 0.10 where the champion had none
    assert impact.judge(1.30, 1.10)[0] and impact.judge(1.30, 0.99)[0]  # favouring the monitored group more: no loss
    assert not impact.judge(0.75, 0.76)[0]  # under the four-fifths rule
    rate = MetricThreshold("false_positive_rate", min_change=-0.01, greater_is_better=False, ideal=0.05)
    assert rate.judge(0.02, 0.04)[0] and not rate.judge(0.07, 0.04)[0]  # counted down to 0.05 only


def test_compare_lists_every_criterion_with_both_figures():
    table = compare({"auc_roc": 0.9, "accuracy": 0.8}, {"auc_roc": 0.85, "accuracy": 0.82}, DEFAULT_CRITERIA)
    assert list(table["metric"]) == [c.metric for c in DEFAULT_CRITERIA]
    row = table.set_index("metric").loc["auc_roc"]
    assert row["passed"] and row["change"] == pytest.approx(0.05)
    assert table.set_index("metric")["better"].to_dict()["disparate_impact[Age]"] == "higher, up to 1"
    assert table.set_index("metric").loc["disparate_impact[Sex]", "passed"] is None  # not measured


def test_criteria_can_be_overridden_and_added():
    chosen = {c.metric: c for c in criteria_from({"auc_roc": {"threshold": 0.9}, "f1": {"threshold": 0.5}})}
    assert chosen["auc_roc"].threshold == 0.9 and chosen["auc_roc"].min_change == -0.02
    assert chosen["f1"] == MetricThreshold("f1", threshold=0.5)
    with pytest.raises(ValueError, match="criterion 'auc_roc': unknown field"):
        criteria_from({"auc_roc": {"minimum": 0.9}})


def test_a_challenger_is_shown_but_only_a_champion_is_a_bar():
    candidate, baseline = {"auc_roc": 0.82}, {"auc_roc": 0.90}
    as_champion = compare(candidate, baseline, DEFAULT_CRITERIA[:1])
    as_challenger = compare(candidate, baseline, DEFAULT_CRITERIA[:1], judge_change=False)
    assert not as_champion.loc[0, "passed"] and "against the baseline's 0.900" in as_champion.loc[0, "reason"]
    assert as_challenger.loc[0, "passed"] and as_challenger.loc[0, "baseline"] == 0.90
