"""Request parsing against the contract, and the fast scoring path against scikit-learn."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from utils.data import CATEGORICAL_FEATURES, CLASS_ORDER, FEATURES, LABEL, NUMERIC_FEATURES, generate_credit_data
from utils.scoring import (
    MAX_ROWS,
    InputError,
    Scorer,
    check_row_count,
    frame_columns,
    parse_fields_values,
    parse_v2_inputs,
    records,
    valid_rows,
    validate_columns,
    wml_request,
)

EXAMPLE = [
    "no_checking", 13, "credits_paid_to_date", "car_new", 1343, "100_to_500", "1_to_4", 2, "female", "none", 3,
    "savings_insurance", 46, "none", "own", 2, "skilled", 1, "none", "yes",
]  # fmt: skip


@pytest.fixture(scope="module")
def applicants():
    return generate_credit_data(500, seed=99)


@pytest.mark.parametrize("model_type", ["logistic_regression", "gradient_boosting"])
def test_fast_path_agrees_with_scikit_learn(trained, applicants, model_type):
    model = trained[model_type].model
    scorer = Scorer(model, model_type)
    assert scorer.fast
    columns = frame_columns(applicants)
    expected = model.predict_proba(applicants[list(FEATURES)])
    order = [list(model.classes_).index(c) for c in CLASS_ORDER]
    labels, proba = scorer.predict(columns)
    assert np.abs(proba - expected[:, order]).max() < 1e-6
    assert labels == model.predict(applicants[list(FEATURES)]).tolist()
    one = frame_columns(applicants.iloc[[3]])
    assert np.abs(scorer.predict_proba(one) - expected[[3]][:, order]).max() < 1e-6
    for frame in (applicants, applicants.astype({name: "category" for name in CATEGORICAL_FEATURES})):
        frame_labels, frame_proba = scorer.predict_frame(frame)
        assert frame_labels.tolist() == labels and np.array_equal(frame_proba, proba)  # the same arithmetic


def test_pipeline_without_a_fast_path_is_still_scored_correctly(trained, applicants):
    train = applicants[list(FEATURES)]
    unsupported = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(drop="first", sparse_output=False), list(CATEGORICAL_FEATURES)),
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
        ]
    )
    model = Pipeline([("preprocess", unsupported), ("classifier", LogisticRegression(max_iter=500))])
    model.fit(train, applicants[LABEL])
    scorer = Scorer(model, "fallback")
    assert not scorer.fast
    expected = model.predict_proba(train[:20])
    assert np.abs(scorer.predict_proba(frame_columns(applicants[:20])) - expected).max() < 1e-12


def test_a_model_with_other_classes_is_refused(applicants):
    features = applicants[list(NUMERIC_FEATURES)]
    model = LogisticRegression(max_iter=2000).fit(features, (applicants[LABEL] == "Risk").astype(int))
    with pytest.raises(ValueError, match="expected the classes"):
        Scorer(model, "numbers")


def test_a_category_the_model_never_saw_names_field_and_row(applicants):
    seen = applicants[applicants["LoanPurpose"] != "vacation"]
    preprocess = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(sparse_output=False), list(CATEGORICAL_FEATURES)),
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
        ]
    )
    model = Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression(max_iter=500))])
    model.fit(seen[list(FEATURES)], seen[LABEL])
    scorer = Scorer(model, "narrow")
    rows = applicants[applicants["LoanPurpose"] == "vacation"].head(1)
    columns = frame_columns(pd.concat([seen.head(2), rows]))
    with pytest.raises(InputError) as error:
        scorer.predict(columns)  # three records: scored row by row (utils.logistic_rows)
    assert (error.value.field, error.value.row) == ("LoanPurpose", 2)
    with pytest.raises(InputError) as vectorised:
        scorer.predict_proba(columns)
    assert vectorised.value.message == error.value.message
    frame = pd.concat([seen.head(2), rows]).astype({"LoanPurpose": "category"})
    with pytest.raises(InputError) as on_frame:
        scorer.predict_frame(frame)
    assert (on_frame.value.field, on_frame.value.row, on_frame.value.message) == ("LoanPurpose", 2, error.value.message)


def _passes(row: dict) -> bool:
    try:
        validate_columns({name: [value] for name, value in row.items()})
    except InputError:
        return False
    return True


def _rows(frame: pd.DataFrame) -> list[dict]:
    values = {name: frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in FEATURES}
    return [{name: values[name][i] for name in FEATURES} for i in range(len(frame))]


def test_valid_rows_applies_the_rules_of_validate_columns(applicants):
    frame = applicants.head(12).drop(columns=LABEL).reset_index(drop=True)
    text = frame.to_csv(index=False).splitlines()
    changes = [("LoanDuration", "24.0"), ("Age", "120"), ("Sex", "other"), ("Housing", ""), ("Dependents", "1.5")]
    for row, (name, value) in enumerate(changes, 2):  # 24.0 makes a float column, still valid
        fields = text[row + 1].split(",")
        fields[FEATURES.index(name)] = value
        text[row + 1] = ",".join(fields)
    read = pd.read_csv(io.StringIO("\n".join(text)), dtype={name: "category" for name in CATEGORICAL_FEATURES})
    assert valid_rows(read).tolist() == [_passes(row) for row in _rows(read)]
    assert valid_rows(read).tolist() == [True] * 3 + [False] * 4 + [True] * 5
    assert read["LoanDuration"].dtype == float and read["Sex"].dtype == "category"

    odd = frame.astype(object)  # values of every type in object columns: never passed when validate_columns fails
    odd.loc[0, "Age"], odd.loc[1, "Age"], odd.loc[2, "Age"], odd.loc[3, "Age"] = True, 30.0, np.int64(30), "30"
    odd.loc[4, "Sex"], odd.loc[5, "Sex"], odd.loc[6, "LoanAmount"] = ["female"], 1, None
    odd.loc[7, "Telephone"], odd.loc[8, "Housing"] = np.nan, "Own"
    odd["Dependents"] = odd["Dependents"].astype(bool)
    assert not valid_rows(odd).any()
    odd["Dependents"] = frame["Dependents"]
    passes = [_passes(row) for row in _rows(odd)]
    assert not (valid_rows(odd) & ~np.array(passes)).any()
    assert valid_rows(odd).tolist() == [False, True, False, False, False, False, False, False, False, True, True, True]


def test_fields_in_any_order_give_the_same_columns(applicants):
    frame = applicants.head(5)
    request = wml_request(frame)["input_data"][0]
    in_order = parse_fields_values(request["fields"], request["values"])
    assert in_order == frame_columns(frame)
    shuffled = list(reversed(request["fields"]))
    values = [list(reversed(row)) for row in request["values"]]
    assert parse_fields_values(shuffled, values) == in_order
    assert list(parse_fields_values(shuffled, values)) == list(FEATURES)  # in the contract's order
    labelled = parse_fields_values([LABEL, *shuffled], [["Risk", *row] for row in values], label=True)
    assert list(labelled) == [*FEATURES, LABEL] and labelled[LABEL] == ["Risk"] * 5
    assert records(in_order)[0] == {name: frame.iloc[0][name] for name in FEATURES}


def test_integral_floats_are_taken_as_integers():
    row = list(EXAMPLE)
    row[FEATURES.index("Age")] = 46.0
    columns = parse_fields_values(list(FEATURES), [row])
    assert columns["Age"] == [46] and type(columns["Age"][0]) is int


def _with(field: str, value) -> list:
    row = list(EXAMPLE)
    row[FEATURES.index(field)] = value
    return row


@pytest.mark.parametrize(
    ("fields", "values", "field", "row", "message"),
    [
        ([*FEATURES, "Salary"], [[*EXAMPLE, 1]], "Salary", None, "unknown field"),
        (list(FEATURES[:-1]), [EXAMPLE[:-1]], "ForeignWorker", None, "missing field"),
        ([*FEATURES, "Age"], [[*EXAMPLE, 46]], "Age", None, "given twice"),
        (list(FEATURES), [EXAMPLE, EXAMPLE[:5]], "values", 1, "holds 5 values"),
        (list(FEATURES), [EXAMPLE, "not a row"], "values", 1, "holds str values"),
        (list(FEATURES), [], "values", None, "empty"),
        (list(FEATURES), [EXAMPLE, _with("Age", "46")], "Age", 1, "must be an integer"),
        (list(FEATURES), [_with("Age", True)], "Age", 0, "must be an integer"),
        (list(FEATURES), [_with("LoanAmount", 1343.5)], "LoanAmount", 0, "must be an integer"),
        (list(FEATURES), [_with("Age", 120)], "Age", 0, "out of the contract.s range \\[18, 100\\]"),
        (list(FEATURES), [_with("Age", None)], "Age", 0, "null"),
        (list(FEATURES), [EXAMPLE, EXAMPLE, _with("Sex", None)], "Sex", 2, "null"),
        (list(FEATURES), [_with("Sex", "other")], "Sex", 0, "unseen category"),
        (list(FEATURES), [_with("Sex", 1)], "Sex", 0, "must be text"),
        (list(FEATURES), [_with("Sex", ["female"])], "Sex", 0, "must be text"),
    ],
)
def test_bad_input_names_field_and_row(fields, values, field, row, message):
    with pytest.raises(InputError, match=message) as error:
        parse_fields_values(fields, values)
    assert (error.value.field, error.value.row, error.value.status) == (field, row, 400)
    body = error.value.as_dict()
    assert (body["error"], body["field"], body["row"]) == (error.value.message, field, row)
    assert [(f["field"], f["row"]) for f in body.get("faults", [{"field": field, "row": row}])] == [(field, row)]


def test_feedback_needs_a_valid_label():
    fields = [*FEATURES, LABEL]
    assert parse_fields_values(fields, [[*EXAMPLE, "Risk"]], label=True)[LABEL] == ["Risk"]
    with pytest.raises(InputError, match="unseen category") as error:
        parse_fields_values(fields, [[*EXAMPLE, "Maybe"]], label=True)
    assert (error.value.field, error.value.row) == (LABEL, 0)
    with pytest.raises(InputError, match="missing field 'Risk'"):
        parse_fields_values(list(FEATURES), [EXAMPLE], label=True)


def test_row_limit():
    check_row_count(MAX_ROWS)
    with pytest.raises(InputError) as error:
        check_row_count(MAX_ROWS + 1)
    assert (error.value.status, error.value.field, error.value.row) == (413, "values", MAX_ROWS)
    with pytest.raises(InputError, match="empty"):
        check_row_count(0)


@dataclass
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    data: list


def _tensors(rows: list[list]) -> list[Tensor]:
    return [
        Tensor(name, [len(rows)], "INT64" if name in NUMERIC_FEATURES else "BYTES", [row[i] for row in rows])
        for i, name in enumerate(FEATURES)
    ]


def test_v2_inputs_give_the_same_columns_as_wml():
    rows = [EXAMPLE, _with("Age", 30)]
    expected = parse_fields_values(list(FEATURES), rows)
    assert parse_v2_inputs(_tensors(rows)) == expected
    nested = [Tensor(t.name, [2, 1], t.datatype, [[v] for v in t.data]) for t in _tensors(rows)]
    assert parse_v2_inputs(nested) == expected


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda ts: ts.pop(), "ForeignWorker", "missing field"),
        (lambda ts: setattr(ts[1], "datatype", "BYTES"), "LoanDuration", "expected a number type"),
        (lambda ts: setattr(ts[0], "datatype", "INT64"), "CheckingStatus", "expected BYTES"),
        (lambda ts: setattr(ts[0], "shape", [3]), "CheckingStatus", "shape"),
        (lambda ts: setattr(ts[2], "shape", [2, 2]), "CreditHistory", "shape"),
        (lambda ts: (setattr(ts[4], "data", [1343]), setattr(ts[4], "shape", [1])), "LoanAmount", "has 1 values"),
    ],
)
def test_v2_bad_inputs_name_the_input(change, field, message):
    tensors = _tensors([EXAMPLE, EXAMPLE])
    change(tensors)
    with pytest.raises(InputError, match=message) as error:
        parse_v2_inputs(tensors)
    assert error.value.field == field


def test_v2_value_errors_name_the_row_and_the_limit_holds():
    tensors = _tensors([EXAMPLE, _with("Age", 12)])
    with pytest.raises(InputError) as error:
        parse_v2_inputs(tensors)
    assert (error.value.field, error.value.row) == ("Age", 1)
    with pytest.raises(InputError) as error:
        parse_v2_inputs(_tensors([EXAMPLE] * 3), max_rows=2)
    assert (error.value.status, error.value.field) == (413, "inputs")
