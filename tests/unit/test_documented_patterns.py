"""The OpenAPI schema is as strict as the checks behind it: a model id, deployment name or person's name matches
its documented pattern (and length) exactly when the service's own check accepts it, so that no schema-valid
request is refused and the schema admits no string the check would refuse."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.deployment import (
    MAX_PERSON_LENGTH,
    NAME_PATTERN,
    PERSON_PATTERN,
    DeploymentError,
    check_person,
    is_valid_name,
)
from utils.registry import MODEL_REF_PATTERN, RegistryError, parse_model_id
from utils.serving import ServiceSettings, create_app


def _model_ref_accepted(text: str) -> bool:
    try:
        parse_model_id(text.removesuffix("-latest") + "-v1" if text.endswith("-latest") else text)
    except RegistryError:
        return False
    return True


def _person_accepted(text: str) -> bool:
    try:
        check_person(text)
    except DeploymentError:
        return False
    return True


RULES = {  # pattern, longest string, the service's check
    "model id": (MODEL_REF_PATTERN, None, _model_ref_accepted),
    "deployment name": (NAME_PATTERN, 100, is_valid_name),
    "person": (PERSON_PATTERN, MAX_PERSON_LENGTH, _person_accepted),
}
NEAR_MISSES = ["", "a", "a\n", "a..b", "a.", "-a", "A-v1", "a-v0", "a-v1\n", "a-latest", "a b", "a  b", "ù", "a\x00"]
NEAR_MISSES += ["credit-risk-v1", "x" * 101 + "-v1", "x" * 100 + "-v1", "a-v" + "1" * 10, "Grace Hopper", "A" * 65]


def _documented(pattern: str, longest: int | None, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None and (longest is None or len(text) <= longest)


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_documented_pattern_accepts_exactly_what_the_check_accepts(rule, data):
    pattern, longest, accepted = RULES[rule]
    alphabet = st.characters(codec="utf-8", categories=("L", "N", "P", "Zs", "Cc"))
    text = data.draw(
        st.one_of(
            st.sampled_from(NEAR_MISSES),
            st.from_regex(pattern, fullmatch=True),
            st.text(alphabet, max_size=12),
            st.from_regex(pattern, fullmatch=True).map(lambda s: s + data.draw(st.text(alphabet, max_size=2))),
        )
    )
    assert _documented(pattern, longest, text) == accepted(text), repr(text)


def test_the_openapi_document_states_the_patterns(tmp_path):
    document = create_app(ServiceSettings(work=tmp_path, datamart_url=f"sqlite:///{tmp_path / 'm.sqlite'}")).openapi()
    schemas = document["components"]["schemas"]
    assert schemas["DeploymentRequest"]["properties"]["model_id"]["pattern"] == MODEL_REF_PATTERN
    assert schemas["DeploymentRequest"]["properties"]["name"]["pattern"] == NAME_PATTERN
    assert schemas["PromotionRequest"]["properties"]["model_id"]["pattern"] == MODEL_REF_PATTERN
    assert schemas["MonitorConfigBody"]["properties"]["updated_by"]["pattern"] == PERSON_PATTERN
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert list(infer) == ["application/json"], "no schema says which bytes hold a binary tensor request"


def test_a_well_formed_id_of_no_registered_version_is_404_and_names_no_path(tmp_path):
    settings = ServiceSettings(work=tmp_path, datamart_url=f"sqlite:///{tmp_path / 'm.sqlite'}")
    with TestClient(create_app(settings)) as client:
        for path in ("/ml/v4/deployments", "/ml/v4/promotions"):
            for model_id in ("credit-risk-v7", "credit-risk-latest"):
                missing = client.post(path, json={"model_id": model_id})
                assert missing.status_code == 404 and missing.json()["field"] == "model_id", missing.text
                assert "in the registry" in missing.text and str(tmp_path) not in missing.text
            malformed = client.post(path, json={"model_id": "Credit-Risk-v7"})
            assert malformed.status_code == 400 and malformed.json()["field"] == "model_id", malformed.text
