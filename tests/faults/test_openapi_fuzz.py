"""Bounded schemathesis over the live server's /openapi.json: no server error on any input, and every answer as
the schema documents it (status codes, content types, bodies, headers)."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import Failure, FailureGroup

from utils.serving import start_server

pytestmark = [pytest.mark.slow, pytest.mark.datamarts]

EXAMPLES_PER_OPERATION = 25
API_KEY = "fuzz-key"
AUTHORIZATION = {"Authorization": f"Bearer {API_KEY}"}


def _failures(operation, base_url: str, calls: Counter, examples: dict[str, str]) -> list[str]:
    """What schemathesis's checks find on ``operation`` in a bounded run: one line per failure; the first message
    of each kind goes to ``examples``."""
    found: list[str] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # bounded: no shrinking
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(case) -> None:
        calls[operation.label] += 1
        response = case.call(base_url=base_url, headers=AUTHORIZATION, timeout=30)
        try:
            case.validate_response(response)
        except (Failure, FailureGroup) as error:  # a check failed: note it, go on with the next example
            for failure in getattr(error, "exceptions", [error]):
                found.append(f"{operation.label}: {failure.title}")
                examples.setdefault(
                    found[-1],
                    f"{case.method} {case.formatted_path} {case.body!r:.200}"
                    f" -> {response.status_code} {response.text:.300}",
                )

    fuzz()
    return found


def test_every_operation_answers_as_documented_and_never_with_a_server_error(workspace):
    with start_server(
        workers=1,
        work=workspace.work,
        datamart_url=workspace.datamart_url,
        api_key=API_KEY,
        access_log=False,
        timeout=120,
    ) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        calls: Counter = Counter()
        failures: Counter = Counter()
        examples: dict[str, str] = {}
        for result in schema.get_all_operations():
            failures.update(_failures(result.ok(), server.url, calls, examples))
        log = server.log()
    print(f"{sum(calls.values())} requests over {len(calls)} operations; failures: {dict(failures) or 'none'}")
    for failure, example in examples.items():
        print(f"- {failure}\n    {example[:600]}")
    assert "Traceback" not in log, log[-3000:]
    assert not failures, dict(failures)
