"""The two levels of checks (the contract refuses, the observed ranges flag), feedback as users send it, and
identifiers that every database answers alike; in process, through the app and Starlette's test client."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from utils import datamart
from utils.contract import MAX_LISTED_ROWS, observed_ranges, out_of_range
from utils.data import FEATURES, LABEL, generate_credit_data
from utils.decision import risk_probability
from utils.monitoring import Thresholds, Window
from utils.monitoring.data_quality import DataQualityMonitor
from utils.scoring import InputError, parse_fields_values, wml_request
from utils.serving import EXAMPLE_ROW, ServiceSettings, create_app
from utils.serving import service as ops

pytestmark = pytest.mark.datamarts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

AGE, AMOUNT, DURATION = FEATURES.index("Age"), FEATURES.index("LoanAmount"), FEATURES.index("LoanDuration")


def _row(**changes) -> list:
    row = list(EXAMPLE_ROW)
    for name, value in changes.items():
        row[FEATURES.index(name)] = value
    return row


@pytest.fixture(scope="module")
def client(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def base(workspace) -> str:
    return f"/ml/v4/deployments/{workspace.deployment.deployment_id}"


def test_every_fault_of_every_row_is_named_with_field_and_row():
    values = [_row(), _row(Age=7, LoanAmount=0, Sex="other"), _row(), _row(LoanDuration=121)]
    with pytest.raises(InputError) as error:
        parse_fields_values(list(FEATURES), values)
    faults = [(f["field"], f["row"]) for f in error.value.as_dict()["faults"]]
    assert faults == [("LoanAmount", 1), ("Sex", 1), ("Age", 1), ("LoanDuration", 3)]
    assert (error.value.field, error.value.row, error.value.rows_omitted) == ("LoanAmount", 1, 0)
    assert "2 rows break the data contract" in error.value.message
    assert "row 3: LoanDuration = 121 is out of the contract's range [1, 120]" in error.value.message


def test_an_error_lists_a_bounded_number_of_rows_and_counts_the_others():
    values = [_row(Age=150) for _ in range(MAX_LISTED_ROWS + 7)]
    with pytest.raises(InputError) as error:
        parse_fields_values(list(FEATURES), values)
    assert len(error.value.faults) == MAX_LISTED_ROWS and error.value.rows_omitted == 7
    assert "7 more rows at fault are not listed" in error.value.message


def test_plausible_values_outside_the_training_ranges_are_scored_and_flagged(client, base, workspace):
    rows = [_row(), _row(LoanAmount=11766, Age=80), _row(LoanDuration=68)]
    response = client.post(f"{base}/predictions", json={"input_data": [{"fields": list(FEATURES), "values": rows}]})
    assert response.status_code == 200, response.text
    ids = response.json()["predictions"][0]["transaction_ids"]
    stored = datamart.read_payload(workspace.engine, workspace.deployment.deployment_id).set_index("transaction_id")
    assert [stored.loc[i, "out_of_range"] for i in ids] == [None, ["LoanAmount", "Age"], ["LoanDuration"]]


def test_a_request_with_invalid_rows_logs_nothing_and_lists_each_row(client, base, workspace):
    before = len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id))
    rows = [_row(), _row(Age=17, Dependents=11), _row(LoanAmount=-5)]
    response = client.post(f"{base}/predictions", json={"input_data": [{"fields": list(FEATURES), "values": rows}]})
    body = response.json()
    assert response.status_code == 400
    assert [(f["field"], f["row"]) for f in body["faults"]] == [("Age", 1), ("Dependents", 1), ("LoanAmount", 2)]
    assert body["rows_omitted"] == 0 and (body["field"], body["row"]) == ("Age", 1)
    assert len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id)) == before


def test_observed_ranges_come_from_the_training_split(tmp_path):
    train = generate_credit_data(200, seed=3)
    train.to_csv(tmp_path / "train.csv", index=False)
    ranges = observed_ranges(tmp_path / "train.csv")
    assert ranges["LoanAmount"] == (train["LoanAmount"].min(), train["LoanAmount"].max())
    assert observed_ranges(tmp_path / "missing.yaml")["Age"] == (19, 74)
    columns = {name: train[name].tolist()[:3] for name in FEATURES}
    columns["Age"] = [int(train["Age"].max()) + 1, 30, 30]
    assert out_of_range(columns, ranges) == [["Age"], None, None]


def _feedback_frame(rows: int, seed: int) -> pd.DataFrame:
    return generate_credit_data(rows, seed=seed)[[*FEATURES, LABEL]]


def test_feedback_as_row_objects_and_as_csv(client, base, workspace):
    frame = _feedback_frame(4, seed=11)
    as_rows = client.post(f"{base}/feedback", json=frame.astype(object).to_dict("records"))
    as_csv = client.post(
        f"{base}/feedback", content=frame.to_csv(index=False).encode(), headers={"Content-Type": "text/csv"}
    )
    assert (as_rows.status_code, as_csv.status_code) == (200, 200), as_rows.text + as_csv.text
    stored = datamart.read_feedback(workspace.engine, workspace.deployment.deployment_id).set_index("feedback_id")
    for response in (as_rows, as_csv):
        got = stored.loc[response.json()["feedback_ids"]]
        assert got[[*FEATURES]].astype(str).values.tolist() == frame[[*FEATURES]].astype(str).values.tolist()
        assert got["label"].tolist() == frame[LABEL].tolist()
    broken = client.post(f"{base}/feedback", content="Age,Risk\n30,Risk\n", headers={"Content-Type": "text/csv"})
    assert broken.status_code == 400 and "missing field" in broken.json()["error"]


def test_feedback_names_the_transaction_it_labels_and_quality_uses_its_logged_probability(client, base, workspace):
    frame = _feedback_frame(3, seed=12)
    scored = client.post(f"{base}/predictions", json=wml_request(frame))
    ids = scored.json()["predictions"][0]["transaction_ids"]
    logged = [pair[1] for _, pair in scored.json()["predictions"][0]["values"]]
    rows = frame.astype(object).to_dict("records")
    for row, transaction_id in zip(rows[:2], ids, strict=False):
        row["transaction_id"] = transaction_id
    sent = client.post(f"{base}/feedback", json=rows)
    assert sent.status_code == 200, sent.text
    feedback_ids = sent.json()["feedback_ids"]
    window = datamart.read_window(workspace.engine, workspace.deployment.deployment_id, feedback=True)
    feedback = window.iloc[-3:].reset_index(drop=True)
    assert np.allclose(feedback["logged_probability_risk"].to_numpy()[:2], logged[:2])
    assert np.isnan(feedback["logged_probability_risk"].iloc[2])

    class Changed:  # a model that now says otherwise: linked records keep the logged probability
        classes_ = workspace.model.classes_

        def predict_proba(self, x):
            return np.tile([0.0, 1.0], (len(x), 1))

    judged = Window.of(Changed(), window.iloc[:0], feedback).scored["probability_risk"].tolist()
    assert judged == pytest.approx([*logged[:2], 1.0])
    stored = datamart.read_feedback(workspace.engine, workspace.deployment.deployment_id).set_index("feedback_id")
    assert stored.loc[feedback_ids, "transaction_id"].tolist() == [*ids[:2], None]


def test_an_unknown_or_malformed_transaction_id_is_a_400_naming_the_row(client, base, workspace):
    rows = _feedback_frame(3, seed=13).astype(object).to_dict("records")
    rows[1]["transaction_id"] = str(uuid.uuid4())
    rows[2]["transaction_id"] = "x\x00y"
    response = client.post(f"{base}/feedback", json=rows)
    assert response.status_code == 400
    assert [(f["field"], f["row"]) for f in response.json()["faults"]] == [("transaction_id", 2)]
    rows[2]["transaction_id"] = None
    response = client.post(f"{base}/feedback", json=rows)
    assert response.status_code == 400 and response.json()["row"] == 1
    assert "no prediction of this deployment" in response.json()["error"]


def _like_postgres(function):
    """``function`` as it behaves on PostgreSQL: its driver refuses a NUL byte in a bound string."""

    def call(*args, **kwargs):
        if any(isinstance(value, str) and "\x00" in value for value in (*args, *kwargs.values())):
            raise sa.exc.DataError(
                "SELECT ...", {}, ValueError("A string literal cannot contain NUL (0x00) characters.")
            )
        return function(*args, **kwargs)

    return call


@pytest.mark.parametrize("identifier", ["bad\x00id", "d" * 65, "line\n"])
def test_nul_bytes_and_long_identifiers_are_a_clear_4xx_before_any_database_sees_them(client, identifier, monkeypatch):
    for name in ("get_deployment", "find_deployments", "delete_deployment"):
        monkeypatch.setattr(ops, name, _like_postgres(getattr(ops, name)))
    quoted = identifier.replace("\x00", "%00").replace("\n", "%0A")
    for method, path in (
        ("get", f"/ml/v4/deployments/{quoted}"),
        ("delete", f"/ml/v4/deployments/{quoted}"),
        ("post", f"/ml/v4/deployments/{quoted}/predictions"),
        ("get", f"/v2/models/{quoted}"),
    ):
        kwargs = (
            {"json": {"input_data": [{"fields": list(FEATURES), "values": [EXAMPLE_ROW]}]}} if method == "post" else {}
        )
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["field"] in ("deployment_id", "name")
    listed = client.get("/ml/v4/deployments", params={"name": identifier})
    assert listed.status_code == 200 and listed.json()["resources"] == []


def test_the_out_of_range_share_alerts_above_its_threshold():
    monitor = DataQualityMonitor(Thresholds(max_out_of_range_share=0.05, min_records=100))
    flags = np.zeros(200, dtype=bool)
    flags[:9] = True  # 4.5 %
    calm = monitor.run(Window(pd.DataFrame({"out_of_range": flags}), pd.DataFrame(), pd.DataFrame()))
    flags[:20] = True  # 10 %
    alarmed = monitor.run(Window(pd.DataFrame({"out_of_range": flags}), pd.DataFrame(), pd.DataFrame()))
    few = monitor.run(Window(pd.DataFrame({"out_of_range": flags[:50]}), pd.DataFrame(), pd.DataFrame()))
    assert (calm.verdict, alarmed.verdict, few.verdict) == (False, True, None)
    assert alarmed.measurements[0]["value"] == pytest.approx(0.10) and "50 payload records" in few.status


def test_nul_bytes_and_long_names_are_answered_alike_on_every_data_mart(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url)
    with TestClient(create_app(settings)) as client:
        for path in ("/ml/v4/deployments/a%00b", "/v2/models/a%00b"):
            assert client.get(path).status_code == 404
        assert client.get("/ml/v4/deployments", params={"name": "a\x00b"}).json()["resources"] == []
        created = client.post("/ml/v4/deployments", json={"model_id": "credit-risk-v1", "name": "n" * 220})
        assert created.status_code == 400


def test_feedback_without_a_transaction_is_scored_again(workspace):
    frame = _feedback_frame(5, seed=14)
    window = Window.of(workspace.model, frame.iloc[:0], frame.assign(logged_probability_risk=np.nan))
    assert window.scored["probability_risk"].to_numpy() == pytest.approx(risk_probability(workspace.model, frame))
