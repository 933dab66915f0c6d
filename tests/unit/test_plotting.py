"""Plots: a Figure with the expected panels, drawn from the data given, never left open in pyplot."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from utils import plotting
from utils.data import CLASS_ORDER, LABEL, NUMERIC_FEATURES, UNFAVOURABLE
from utils.decision import risk_probability
from utils.training import evaluate


def visible_axes(figure: Figure) -> list:
    return [axis for axis in figure.axes if axis.get_visible() and axis.axison]


def render(figure: Figure) -> None:
    """Draw the figure for real (layout, text, images), as a notebook would."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


@pytest.fixture
def pyplot_untouched():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


@pytest.fixture
def evaluated(trained, train_test):
    _, test = train_test
    model = trained["logistic_regression"].model
    _, matrix = evaluate(model, test)
    return test[LABEL], risk_probability(model, test), matrix


def test_numeric_distributions(small_frame, pyplot_untouched):
    figure = plotting.numeric_distributions(small_frame)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 8
    shown = visible_axes(figure)
    assert [axis.get_title() for axis in shown] == list(NUMERIC_FEATURES)
    assert all(axis.get_xlabel() and axis.get_ylabel() == "applicants" for axis in shown)
    assert shown[1].get_xlabel() == "loan amount (currency units)"
    legend = figure.axes[-1].get_legend()  # one legend, in the empty eighth panel
    assert [text.get_text() for text in legend.get_texts()] == list(CLASS_ORDER)
    render(figure)


def test_numeric_distributions_count_every_row(small_frame):
    figure = plotting.numeric_distributions(small_frame)
    for axis in visible_axes(figure):
        heights = sum(patch.get_height() for patch in axis.patches)
        assert heights == len(small_frame), axis.get_title()


def test_numeric_distributions_one_bar_per_small_integer(small_frame):
    figure = plotting.numeric_distributions(small_frame)
    axis = next(a for a in figure.axes if a.get_title() == "Dependents")
    values = small_frame["Dependents"]
    assert len(axis.patches) == len(CLASS_ORDER) * (values.max() - values.min() + 1)


@pytest.mark.parametrize(("columns", "grid", "shown"), [(["Sex", "Housing", "Job"], 4, 3), (["Sex"], 2, 1)])
def test_risk_rate_by_category(small_frame, pyplot_untouched, columns, grid, shown):
    figure = plotting.risk_rate_by_category(small_frame, columns)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == grid
    axes = visible_axes(figure)
    assert len(axes) == shown
    for axis, column in zip(axes, columns):
        assert column in axis.get_title()
        expected = (small_frame[LABEL] == UNFAVOURABLE).groupby(small_frame[column]).mean().sort_values()
        widths = [patch.get_width() for patch in axis.patches]
        np.testing.assert_allclose(widths, expected.to_numpy())
        assert [label.get_text() for label in axis.get_yticklabels()] == list(expected.index)
    render(figure)


def test_risk_rate_by_category_even_count(small_frame):
    figure = plotting.risk_rate_by_category(small_frame, ["Sex", "Housing", "Job", "Telephone"])
    assert len(visible_axes(figure)) == 4


def test_loss_curve(trained, pyplot_untouched):
    result = trained["gradient_boosting"]
    figure = plotting.loss_curve(result.loss_curve, result.step_name)
    assert isinstance(figure, Figure)
    (axis,) = visible_axes(figure)
    assert len(figure.axes) == 1
    assert axis.get_xlabel() == result.step_name
    train_line, validation_line = axis.get_lines()
    np.testing.assert_array_equal(train_line.get_xdata(), result.loss_curve["step"])
    np.testing.assert_array_equal(train_line.get_ydata(), result.loss_curve["train_loss"])
    np.testing.assert_array_equal(validation_line.get_ydata(), result.loss_curve["validation_loss"])
    render(figure)


def test_roc_and_confusion(evaluated, pyplot_untouched):
    y_true, score, matrix = evaluated
    figure = plotting.roc_and_confusion(y_true, score, matrix)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2
    roc_axis, matrix_axis = visible_axes(figure)
    fpr, tpr = roc_axis.get_lines()[0].get_data()
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert [int(text.get_text()) for text in matrix_axis.texts] == matrix.to_numpy().ravel().tolist()
    assert [label.get_text() for label in matrix_axis.get_xticklabels()] == list(CLASS_ORDER)
    assert [label.get_text() for label in matrix_axis.get_yticklabels()] == list(CLASS_ORDER)
    render(figure)


def test_roc_and_confusion_accepts_plain_lists(pyplot_untouched):
    matrix = pd.DataFrame([[3, 1], [1, 2]], index=list(CLASS_ORDER), columns=list(CLASS_ORDER))
    y_true = ["No Risk"] * 4 + ["Risk"] * 3
    figure = plotting.roc_and_confusion(y_true, [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8], matrix)
    assert len(visible_axes(figure)) == 2
    render(figure)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (3.274e-41, "< 0.001"),
        (0.0, "< 0.001"),
        (0.000999, "< 0.001"),
        (0.001, "0.001"),
        (0.01234, "0.012"),
        (0.5, "0.500"),
        (float("nan"), "—"),
        (None, "—"),
    ],
)
def test_p_values_read_plainly(value, shown):
    assert plotting.format_p_value(value) == shown


def test_measurements_show_three_decimals_never_scientific_notation():
    assert plotting.format_number(0.6771234) == "0.677"
    assert plotting.format_number(6.771e-05) == "0.000"
    assert plotting.format_number(float("nan")) == "—"
    assert plotting.format_measurement("disparate_impact", 0.6771234) == "0.677"
    assert plotting.format_measurement("classifier_drift_p_value", 4.165e-31) == "< 0.001"


def test_readable_table_formats_floats_and_p_values_and_leaves_the_rest():
    frame = pd.DataFrame(
        {
            "records": [775, 1225],
            "disparate_impact": [0.67712, 1.0],
            "p_value": [3.2e-41, 0.2],
            "verdict": ["ALERT", "ok"],
        }
    )
    shown = plotting.readable_table(frame)
    assert shown.to_dict("list") == {
        "records": [775, 1225],
        "disparate_impact": ["0.677", "1.000"],
        "p_value": ["< 0.001", "0.200"],
        "verdict": ["ALERT", "ok"],
    }
    assert frame["p_value"].iloc[0] == 3.2e-41, "the table given is left as it was"


def test_favourable_rates_label_disparate_impact_to_three_decimals(pyplot_untouched):
    table = pd.DataFrame(
        {
            "monitored": ["female"],
            "reference": ["male"],
            "favourable_rate_monitored": [0.4829],
            "favourable_rate_reference": [0.6761],
            "disparate_impact": [0.71426],
        },
        index=pd.Index(["Sex"], name="attribute"),
    )
    figure = plotting.favourable_rates(table)
    assert "DI 0.714" in [text.get_text() for text in figure.axes[0].texts]
    render(figure)
