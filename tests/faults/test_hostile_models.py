"""Hostile model files served by the real server: a pickle that runs code, a skops file with a type nobody trusted,
a truncated file and random bytes. Each is registered with its true hash (the hash check passes: the file itself
must be refused), deployed and scored through HTTP: refused with a clear answer naming the model, no code run,
the server up and the honest deployment still scoring."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import httpx
import pytest
import skops.io as sio

from utils.data import file_sha256
from utils.registry import MODEL_SHA256
from utils.scoring import wml_request
from utils.serving import start_server

pytestmark = pytest.mark.slow


class _RunsCode:
    """Loading it would write ``marker``: through pickle's ``__reduce__``, or skops's ``__setstate__``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return Path.write_text, (Path(self.marker), "code ran")

    def __getstate__(self):
        return {"marker": self.marker}

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code ran")


def _hostile_files(honest: bytes, marker: Path) -> dict[str, bytes]:
    return {
        "pickle": pickle.dumps(_RunsCode(marker)),
        "untrusted": sio.dumps(_RunsCode(marker)),
        "truncated": honest[: len(honest) // 2],
        "random": os.urandom(4096),
    }


def _register(registry_root: Path, name: str, content: bytes, template: dict) -> str:
    """A version of ``name`` holding ``content`` as its model file, with that file's true hash recorded."""
    folder = registry_root / name / "v1"
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(content)
    record = {**template, "model_id": f"{name}-v1", "name": name, "version": 1}
    record[MODEL_SHA256] = file_sha256(folder / "model.skops")
    (folder / "metadata.json").write_text(json.dumps(record))
    (folder / "factsheet.json").write_text(json.dumps(record))
    return f"{name}-v1"


def test_hostile_model_files_are_refused_without_running_code_and_the_server_stays_up(workspace, tmp_path):
    honest = workspace.registry.get(workspace.deployment.model_id)
    template = json.loads(honest.metadata_file.read_text())
    marker = tmp_path / "code-ran"
    model_ids = {
        kind: _register(honest.path.parent.parent, f"hostile-{kind}", content, template)
        for kind, content in _hostile_files(honest.model_file.read_bytes(), marker).items()
    }
    request = wml_request(workspace.test.head(2))
    with (
        start_server(
            workers=1,
            work=workspace.work,
            datamart_url=workspace.datamart_url,
            api_key="",
            access_log=False,
            timeout=120,
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        answers = {}
        for kind, model_id in model_ids.items():
            deployed = client.post("/ml/v4/deployments", json={"model_id": model_id, "name": model_id})
            scored = None
            if deployed.status_code < 300:  # recorded: then scoring must refuse the model
                deployment_id = deployed.json()["deployment_id"]
                scored = client.post(f"/ml/v4/deployments/{deployment_id}/predictions", json=request)
            answers[kind] = (deployed, scored)
        live = client.get("/v2/health/live")
        honest_scoring = client.post(
            f"/ml/v4/deployments/{workspace.deployment.deployment_id}/predictions", json=request
        )
        log = server.log()
    for kind, (deployed, scored) in answers.items():
        refusal = scored if scored is not None else deployed
        print(f"{kind}: deploy {deployed.status_code}, score {scored and scored.status_code}: {refusal.text[:200]}")
        assert refusal.status_code in (400, 409, 422, 503), (kind, refusal.status_code, refusal.text)
        error = refusal.json()["error"]
        assert model_ids[kind] in error, (kind, error)
        assert str(workspace.work) not in error, (kind, error)  # the model, not the file system
    assert not marker.exists(), "a hostile model file ran code"
    assert live.status_code == 200 and honest_scoring.status_code == 200, honest_scoring.text
    assert "Traceback" not in log, log[-3000:]
