"""The reference of the serving benchmark: a bare FastAPI endpoint at the scoring path that parses the same JSON
body and returns a constant, run by uvicorn as the service is (``benchmarks/bench_serving.py`` starts it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()

#: The answer to every request: the shape of a one-record WML v4 response.
CONSTANT = {
    "predictions": [{"fields": ["prediction", "probability"], "values": [["No Risk", [0.75, 0.25]]]}],
    "deployment_id": "bare",
    "model_id": "bare",
}


@app.post("/ml/v4/deployments/{deployment_id}/predictions")
async def predictions(deployment_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return CONSTANT
