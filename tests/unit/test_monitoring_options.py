"""The monitoring command line's threshold and minimum options: one per field of ``Thresholds``, with the
documented defaults, refused with the option's name when out of range, and passed on to the evaluation."""

from __future__ import annotations

import dataclasses
import re

import pytest

from utils import config
from utils.monitoring import Thresholds, cli, evaluate

FIELDS = [field.name for field in dataclasses.fields(Thresholds)]


def _parse(*options: str):
    return cli._parser().parse_args(["--deployment-id", "d", *options])


def test_without_options_the_thresholds_are_the_defaults():
    assert cli.thresholds_from(_parse()) == Thresholds()


def test_every_threshold_and_minimum_has_an_option():
    chosen = cli.thresholds_from(
        _parse("--min-auc-roc", "0.85", "--min-records", "50", "--fairness-alpha", "none", "--max-drifted-share", "0.1")
    )
    assert chosen == Thresholds(min_auc_roc=0.85, min_records=50, fairness_alpha=None, max_drifted_share=0.1)
    assert isinstance(chosen.min_records, int)
    text = cli._parser().format_help()
    for name in FIELDS:
        assert f"--{name.replace('_', '-')}" in text


def test_the_defaults_are_the_documented_ones():
    documented = dict(
        re.findall(r"^\| `(\w+)` \| ([^ |]+) \|", (config.PROJECT_ROOT / "docs/monitoring.md").read_text(), re.M)
    )
    for name in FIELDS:
        assert float(documented[name]) == getattr(Thresholds(), name), name


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--drift-p-value", "1.5", "between 0 and 1"),
        ("--fairness-alpha", "0", "between 0 and 1"),
        ("--min-auc-roc", "-0.1", "0 or more"),
        ("--min-records", "2.5", "a whole number"),
        ("--min-feedback", "none", "a whole number"),
        ("--max-accuracy-drop", "nan", "0 or more"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_the_option(option, value, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        _parse(option, value)
    assert stopped.value.code == 2
    assert f"argument {option}: " in (error := capsys.readouterr().err) and message in error


def test_the_options_reach_the_evaluation(monkeypatch, capsys):
    received = {}

    def evaluate_all(*args, **kwargs):
        received.update(kwargs)
        raise LookupError("no such deployment")

    monkeypatch.setattr(evaluate, "evaluate_all", evaluate_all)  # what main imports once the options are parsed
    assert cli.main(["--deployment-id", "d", "--min-feedback", "30", "--multivariate-p-value", "0.001"]) == 2
    assert received["thresholds"] == Thresholds(min_feedback=30, multivariate_p_value=0.001)
    assert "monitoring failed: no such deployment" in capsys.readouterr().err


def test_an_option_overrides_the_stored_configuration_and_only_what_it_names():
    stored = Thresholds(min_records=40, fairness_alpha=None)
    assert cli.thresholds_from(_parse(), stored) == stored
    chosen = cli.thresholds_from(_parse("--min-auc-roc", "0.9", "--fairness-alpha", "0.01"), stored)
    assert chosen == Thresholds(min_records=40, min_auc_roc=0.9, fairness_alpha=0.01)
