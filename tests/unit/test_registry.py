"""The model registry: versions, metadata, factsheets and refusing untrusted model files."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from utils import registry as registry_module
from utils.data import LABEL
from utils.registry import TRUSTED_TYPES, ModelRegistry, RegistryError, parse_model_id, render_factsheet

NAME = "credit-risk"


def double(values):
    """A custom function: skops cannot know it is harmless, so the registry must refuse it."""
    return np.asarray(values) * 2


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def lr_result(trained):
    return trained["logistic_regression"]


@pytest.fixture
def metadata(lr_result, train_test) -> dict:
    return {
        "model_type": lr_result.model_type,
        "hyperparameters": lr_result.hyperparameters,
        "metrics": {"auc_roc": 0.8512345, "accuracy": 0.7654321},
        "convergence_note": lr_result.convergence_note,
        "training_data": {"rows": len(train_test[0]), "sha256": "ab" * 32},
    }


def test_register_numbers_versions(registry, lr_result, metadata):
    first = registry.register(lr_result.model, name=NAME, metadata=metadata)
    second = registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert (first.model_id, second.model_id) == ("credit-risk-v1", "credit-risk-v2")
    assert (first.version, second.version) == (1, 2)
    assert first.path == registry.root / NAME / "v1"
    assert registry.versions(NAME) == [1, 2]
    assert registry.versions("other") == []


def test_names_are_versioned_separately(registry, lr_result, metadata):
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert registry.register(lr_result.model, name="challenger", metadata=metadata).model_id == "challenger-v1"


@pytest.mark.parametrize("model_type", ["logistic_regression", "gradient_boosting"])
def test_loaded_model_predicts_like_original(registry, trained, train_test, metadata, model_type):
    model = trained[model_type].model
    version = registry.register(model, name=NAME, metadata=metadata)
    loaded = registry.load(version.model_id)
    assert loaded is not model
    features = train_test[1].drop(columns=LABEL)
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    assert list(loaded.classes_) == list(model.classes_)


def test_metadata_and_factsheets_are_written(registry, lr_result, metadata):
    version = registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert {p.name for p in version.path.iterdir()} == {
        "model.skops",
        "metadata.json",
        "factsheet.md",
        "factsheet.json",
    }
    record = registry.metadata(version.model_id)
    assert record == json.loads(version.metadata_file.read_text())
    factsheet = json.loads(version.factsheet_json_file.read_text())
    assert {key: factsheet[key] for key in record} == record  # the metadata, and the version's life: none yet
    assert {key: factsheet[key] for key in ("evaluations", "approvals", "deployments", "monitoring")} == dict.fromkeys(
        ("evaluations", "approvals", "deployments", "monitoring"), []
    )
    assert record["model_id"] == "credit-risk-v1"
    assert record["name"] == NAME
    assert record["version"] == 1
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None
    for key, value in metadata.items():
        assert record[key] == value


def test_factsheet_names_model_and_metrics(registry, lr_result, metadata):
    version = registry.register(lr_result.model, name=NAME, metadata=metadata)
    factsheet = version.factsheet_file.read_text()
    assert factsheet.startswith("# Model factsheet: credit-risk-v1")
    assert "| auc_roc | 0.851 |" in factsheet
    assert "| accuracy | 0.765 |" in factsheet
    assert "logistic_regression" in factsheet
    assert "ab" * 32 in factsheet
    assert lr_result.convergence_note in factsheet


def test_render_factsheet_copes_with_little_metadata():
    text = render_factsheet({"model_id": "x-v3"})
    assert text.startswith("# Model factsheet: x-v3")
    assert "not recorded" in text


def test_latest_resolves_to_newest(registry, lr_result, metadata):
    with pytest.raises(RegistryError, match=NAME):
        registry.get(f"{NAME}-latest")
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert registry.get(f"{NAME}-latest").model_id == "credit-risk-v1"
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    latest = registry.get(f"{NAME}-latest")
    assert latest.model_id == "credit-risk-v2"
    assert registry.metadata(f"{NAME}-latest")["model_id"] == "credit-risk-v2"
    assert registry.get("credit-risk-v1").version == 1


def test_versions_sort_numerically(registry, lr_result, metadata):
    for _ in range(10):
        registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert registry.versions(NAME) == list(range(1, 11))
    assert registry.get(f"{NAME}-latest").model_id == "credit-risk-v10"


@pytest.mark.parametrize(
    "model_id",
    ["credit-risk", "credit-risk-v0", "credit-risk-v", "Credit-Risk-v1", "credit-risk-v1.0", "", "../x-v1", "v1"],
)
def test_malformed_id_raises(registry, model_id):
    with pytest.raises(RegistryError, match="malformed"):
        registry.get(model_id)


def test_parse_model_id():
    assert parse_model_id("credit-risk-v12") == ("credit-risk", 12)
    assert parse_model_id("a_b-v1") == ("a_b", 1)


def test_unknown_id_raises(registry, lr_result, metadata):
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    for model_id in ("credit-risk-v2", "other-v1", "other-latest"):
        with pytest.raises(RegistryError):
            registry.get(model_id)
        with pytest.raises(RegistryError):
            registry.load(model_id)


@pytest.mark.parametrize("name", ["Credit Risk", "../escape", "", "-lead"])
def test_register_refuses_bad_name(registry, lr_result, metadata, name):
    with pytest.raises(RegistryError, match="malformed"):
        registry.register(lr_result.model, name=name, metadata=metadata)
    assert list(registry.root.iterdir()) == []


def test_untrusted_type_is_refused(registry):
    x = np.random.default_rng(0).random((40, 2))
    y = (x[:, 0] > 0.5).astype(int)
    model = Pipeline([("custom", FunctionTransformer(double)), ("classifier", LogisticRegression())]).fit(x, y)
    version = registry.register(model, name="custom", metadata={})
    custom_type = f"{double.__module__}.{double.__qualname__}"
    assert custom_type not in TRUSTED_TYPES
    with pytest.raises(RegistryError, match=re.escape(custom_type)):
        registry.load(version.model_id)


def _forget_hash(version) -> None:
    """Make ``version`` look registered before model hashes were recorded."""
    record = json.loads(version.metadata_file.read_text())
    del record[registry_module.MODEL_SHA256]
    version.metadata_file.write_text(json.dumps(record))


def _skops_must_not_run(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("skops read a model file whose hash does not match")

    monkeypatch.setattr(registry_module.sio, "get_untrusted_types", refuse)
    monkeypatch.setattr(registry_module.sio, "load", refuse)


@pytest.mark.parametrize("legacy", [False, True])
def test_tampered_file_is_refused(registry, lr_result, metadata, legacy):
    """A model file swapped for one holding an untrusted type is refused: by its hash, or (no hash) by its types."""
    x = np.random.default_rng(0).random((40, 2))
    evil = Pipeline([("custom", FunctionTransformer(double)), ("c", LogisticRegression())]).fit(x, x[:, 0] > 0.5)
    honest = registry.register(lr_result.model, name=NAME, metadata=metadata)
    impostor = registry.register(evil, name="impostor", metadata={})
    impostor.model_file.replace(honest.model_file)
    if legacy:
        _forget_hash(honest)
    with pytest.raises(RegistryError, match="untrusted" if legacy else "changed after registration"):
        registry.load(honest.model_id)


def test_registration_records_the_model_files_sha256(registry, lr_result, metadata):
    version = registry.register(lr_result.model, name=NAME, metadata={**metadata, "model_sha256": "0" * 64})
    expected = hashlib.sha256(version.model_file.read_bytes()).hexdigest()
    assert registry.metadata(version.model_id)["model_sha256"] == expected  # not the one passed in
    assert json.loads((version.path / "factsheet.json").read_text())["model_sha256"] == expected
    assert registry.load(version.model_id).predict_proba is not None


def test_a_model_file_changed_after_registration_is_refused_before_skops_reads_it(
    registry, lr_result, metadata, monkeypatch
):
    version = registry.register(lr_result.model, name=NAME, metadata=metadata)
    content = bytearray(version.model_file.read_bytes())
    content[len(content) // 2] ^= 0x01
    version.model_file.write_bytes(bytes(content))
    _skops_must_not_run(monkeypatch)
    with pytest.raises(RegistryError, match=r"model 'credit-risk-v1': .*changed after registration") as refused:
        registry.load(f"{NAME}-latest")
    assert str(version.model_file) not in str(refused.value) and str(registry.root) not in str(refused.value)


def test_a_trusted_model_swapped_in_after_registration_is_refused(registry, trained, metadata, monkeypatch):
    """Another valid, trusted skops file in place of the registered one: only the hash can tell."""
    first = registry.register(trained["logistic_regression"].model, name=NAME, metadata=metadata)
    other = registry.register(trained["gradient_boosting"].model, name="other", metadata=metadata)
    other.model_file.replace(first.model_file)
    _skops_must_not_run(monkeypatch)
    with pytest.raises(RegistryError, match="model 'credit-risk-v1'.*changed after registration"):
        registry.load(first.model_id)


def test_a_version_registered_without_a_hash_still_loads(registry, lr_result, metadata, train_test):
    version = registry.register(lr_result.model, name=NAME, metadata=metadata)
    _forget_hash(version)
    assert "model_sha256" not in registry.metadata(version.model_id)
    features = train_test[1].drop(columns=LABEL)
    loaded = registry.load(version.model_id)
    np.testing.assert_array_equal(loaded.predict_proba(features), lr_result.model.predict_proba(features))


@pytest.mark.parametrize(
    "model_id",
    [
        "credit-risk-v1\n",
        "credit-risk-latest\n",
        "credit-risk-v1 ",
        "a" * (registry_module.MAX_NAME_LENGTH + 1) + "-v1",
        "a" * 10_000 + "-v1",
        "a" * 10_000 + "-latest",
        "credit-risk-v" + "9" * (registry_module.MAX_VERSION_DIGITS + 1),
        "credit-risk-v" + "9" * 5_000,
        None,
        3,
    ],
)
def test_malformed_and_over_long_ids_are_refused(registry, lr_result, metadata, model_id):
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    for call in (registry.get, registry.load, registry.metadata):
        with pytest.raises(RegistryError, match="malformed model id") as refused:
            call(model_id)
        assert len(str(refused.value)) < 300  # a long id is shown cut short
    with pytest.raises(RegistryError, match="malformed model id"):
        parse_model_id(model_id)


def test_a_name_of_the_longest_length_is_accepted(registry, lr_result, metadata):
    name = "n" * registry_module.MAX_NAME_LENGTH
    assert parse_model_id(f"{name}-v{'9' * registry_module.MAX_VERSION_DIGITS}") == (name, 999_999_999)
    version = registry.register(lr_result.model, name=name, metadata=metadata)
    assert registry.get(f"{name}-latest") == version
    with pytest.raises(RegistryError, match="too long"):
        registry.register(lr_result.model, name=name + "n", metadata=metadata)
    with pytest.raises(RegistryError, match="malformed"):
        registry.register(lr_result.model, name=NAME + "\n", metadata=metadata)


@pytest.mark.parametrize("content", [b"not a zip file", b"PK\x03\x04 truncated", b""])
def test_a_damaged_model_file_is_refused_naming_the_model(registry, lr_result, metadata, content):
    version = registry.register(lr_result.model, name=NAME, metadata=metadata)
    version.model_file.write_bytes(content)
    with pytest.raises(RegistryError, match=r"model 'credit-risk-v1': the model file is damaged") as refused:
        registry.load(version.model_id)
    assert str(version.model_file) not in str(refused.value)
    with pytest.raises(RegistryError, match=re.escape(str(version.model_file))):
        registry_module.load_trusted(version.model_file)  # without a model id, the file is named


def test_a_zip_that_is_not_a_skops_file_is_refused(registry, lr_result, metadata):
    version = registry.register(lr_result.model, name=NAME, metadata=metadata)
    with zipfile.ZipFile(version.model_file, "w") as archive:
        archive.writestr("other.txt", "no schema here")
    with pytest.raises(RegistryError, match="'credit-risk-v1': the model file is damaged"):
        registry.load(f"{NAME}-latest")


def test_list_has_one_row_per_version(registry, lr_result, metadata):
    assert registry.list().empty
    assert list(registry.list().columns) == ["model_id", "model_type", "auc_roc", "created_at"]
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    registry.register(lr_result.model, name="challenger", metadata={"model_type": "gradient_boosting"})
    listing = registry.list()
    assert sorted(listing["model_id"]) == ["challenger-v1", "credit-risk-v1", "credit-risk-v2"]
    row = listing.set_index("model_id").loc["credit-risk-v2"]
    assert row["model_type"] == "logistic_regression"
    assert row["auc_roc"] == pytest.approx(0.8512345)
    assert pd.isna(listing.set_index("model_id").loc["challenger-v1", "auc_roc"])


def test_no_staging_left_behind(registry, lr_result, metadata):
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert [p.name for p in registry.root.iterdir()] == [NAME]
    assert sorted(p.name for p in (registry.root / NAME).iterdir()) == ["v1", "v2"]
    assert not list(registry.root.rglob("*.tmp"))


def test_failed_register_leaves_no_trace(registry, lr_result, metadata, monkeypatch):
    def broken_factsheet(record):
        raise RuntimeError("disk full")

    monkeypatch.setattr(registry_module, "render_factsheet", broken_factsheet)
    with pytest.raises(RuntimeError, match="disk full"):
        registry.register(lr_result.model, name=NAME, metadata=metadata)
    assert not any(p.name.startswith(".staging") for p in registry.root.iterdir())
    assert registry.versions(NAME) == []


def test_registry_reopens(tmp_path, lr_result, metadata):
    ModelRegistry(tmp_path / "reg").register(lr_result.model, name=NAME, metadata=metadata)
    reopened = ModelRegistry(tmp_path / "reg")
    assert reopened.get(f"{NAME}-latest").model_id == "credit-risk-v1"
    assert reopened.register(lr_result.model, name=NAME, metadata=metadata).model_id == "credit-risk-v2"


def test_metadata_cannot_override_identity(registry, lr_result, metadata):
    registry.register(lr_result.model, name=NAME, metadata=metadata)
    # Re-using a version's metadata for the next one is natural; the new record must name the new version.
    reused = registry.metadata("credit-risk-v1")
    second = registry.register(lr_result.model, name=NAME, metadata=reused)
    record = registry.metadata(second.model_id)
    assert (record["model_id"], record["version"]) == ("credit-risk-v2", 2)


def test_latest_cannot_escape_the_registry(tmp_path, lr_result, metadata):
    outer = ModelRegistry(tmp_path / "outer")
    outer.register(lr_result.model, name=NAME, metadata=metadata)
    inner = ModelRegistry(tmp_path / "outer" / "registry")
    with pytest.raises(RegistryError):
        inner.get(f"../{NAME}-latest")
