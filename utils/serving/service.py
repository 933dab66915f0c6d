"""The scoring service without HTTP: one process's state, and plain functions that do each endpoint's work.

A :class:`Service` holds what a server process keeps between requests: its settings, the data mart engine, the
model registry, the scorers loaded so far and what it last read about each deployment. The functions below take
it (or its engine) and the request models of :mod:`utils.serving.schemas`, and return response models: parse,
score, log the payload, record feedback, and list, create, read and delete deployments. Errors are raised as
:class:`utils.scoring.InputError` (a status, a message, the field and row at fault), :class:`ModelUnavailable` or
:class:`utils.datamart.DatamartUnavailable` (the SQLite file was removed or replaced: nothing is acknowledged);
:mod:`utils.serving.errors` turns them into JSON responses.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from utils import config, datamart
from utils.contract import Fault, check_identifier, contract_error, observed_ranges, shown
from utils.data import CATEGORIES, FEATURES, LABEL
from utils.datamart.records import logged_transactions
from utils.deployment import (
    Deployment,
    DeploymentError,
    ProductionCheckError,
    delete_deployment,
    deploy,
    find_deployments,
    get_deployment,
    is_valid_name,
)
from utils.registry import ModelNotFound, RegistryError, registry_for
from utils.scoring import (
    MAX_ROWS,
    TRANSACTION_FIELD,
    Columns,
    InputError,
    Scorer,
    block_columns,
    check_row_count,
    csv_columns,
    feedback_columns,
    parse_fields_values,
    records,
    row_object_columns,
)
from utils.serving.group_commit import GroupCommitter
from utils.serving.metrics import note_accepted, note_commit_group
from utils.serving.payload_writer import PayloadWriter
from utils.serving.schemas import (
    V2_OUTPUTS,
    DeploymentInfo,
    DeploymentList,
    DeploymentRequest,
    FeedbackRequest,
    FeedbackResponse,
    InputData,
    ModelMetadata,
    Predictions,
    ScoringRequest,
    ScoringResponse,
    TensorMetadata,
)
from utils.times import utc_now

#: Environment variable holding the API key; unset or empty means no key is needed.
API_KEY_ENV = "CREDIT_API_KEY"
#: Model versions kept loaded per server process.
MAX_LOADED_MODELS = 8
#: How long a server process reuses what it read about a deployment, in seconds: a deployment
#: replaced or deleted elsewhere takes effect in every process within this time.
DEPLOYMENT_REFRESH_SECONDS = 1.0
#: How long ``/v2/health/ready`` waits for the data mart to answer before it reports the service not ready.
READY_TIMEOUT_SECONDS = 2.0

_LOG = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """A deployed model that cannot be loaded (a missing, corrupt or untrusted file): the service cannot score."""


@dataclass
class ServiceSettings:
    """What a server process needs; :meth:`from_env` reads what the launcher set."""

    work: Path
    datamart_url: str
    api_key: str | None = None
    max_rows: int = MAX_ROWS

    @classmethod
    def from_env(cls) -> ServiceSettings:
        work = config.work_dir()
        return cls(work=work, datamart_url=datamart.datamart_url(work), api_key=os.environ.get(API_KEY_ENV) or None)


class Service:
    """Per-process state: the data mart engine, the registry, the models loaded so far and recent deployments."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.engine: Engine = datamart.connect(settings.datamart_url)
        self.registry = registry_for(settings.work)
        #: The numbers' ranges in the training data, by which scored records are flagged (read once per process).
        self.observed = observed_ranges(config.layout(settings.work).train)
        self._scorers: dict[str, Scorer] = {}
        self._lock = threading.Lock()
        self._deployments: dict[str, tuple[float, Deployment]] = {}
        store = functools.partial(datamart.insert_payload, self.engine)
        now = functools.partial(datamart.insert_payload_now, self.engine)
        self.payload = GroupCommitter(store, write_now=now, on_commit=note_commit_group)  # requests share a commit
        self.payload_writer = PayloadWriter(self.engine, self.payload, on_drain=note_commit_group)  # journal or group

    def loaded_scorer(self, model_id: str) -> Scorer | None:
        """The scorer of ``model_id`` if this process has loaded it (None: :meth:`scorer` loads it)."""
        return self._scorers.get(model_id)

    def scorer(self, model_id: str) -> Scorer:
        """The scorer of ``model_id``, loaded from the registry (trusted types only) on first use."""
        found = self._scorers.get(model_id)
        if found is not None:
            return found
        with self._lock:
            if model_id not in self._scorers:
                try:
                    loaded = Scorer(self.registry.load(model_id), model_id, self.observed)
                except Exception as error:  # a missing, corrupt or untrusted file: the service cannot score
                    _LOG.error("model %s cannot be loaded: %s: %s", model_id, type(error).__name__, error)
                    raise ModelUnavailable(  # the answer names no file: the details are in the server log
                        f"the model {model_id} cannot be loaded ({type(error).__name__}); see the server log"
                    ) from error
                while len(self._scorers) >= MAX_LOADED_MODELS:
                    self._scorers.pop(next(iter(self._scorers)))
                self._scorers[model_id] = loaded
            return self._scorers[model_id]

    async def ready_problem(self) -> str | None:
        """:func:`readiness` in a worker thread, never blocking the event loop; a data mart that does not answer
        within :data:`READY_TIMEOUT_SECONDS` (say, locked by a writer) is a problem too."""
        with anyio.move_on_after(READY_TIMEOUT_SECONDS):
            return await anyio.to_thread.run_sync(readiness, self, abandon_on_cancel=True)
        return f"the data mart did not answer within {READY_TIMEOUT_SECONDS:g} s"

    def _cached(self, key: str, load: Callable[[], Deployment]) -> Deployment:
        found = self._recent(key)
        if found is None:
            now = time.monotonic()
            with datamart.without_catch_up():  # no payload record is read: no wait for the writers' turn
                found = load()
            self._deployments[key] = (now, found)
        return found

    def _recent(self, key: str) -> Deployment | None:
        hit = self._deployments.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < DEPLOYMENT_REFRESH_SECONDS else None

    def forget_deployments(self) -> None:
        """Read deployments afresh from the data mart (after this process changed them)."""
        self._deployments.clear()

    def deployment(self, deployment_id: str, *, fresh: bool = False) -> Deployment:
        """A deployment by id (404 when there is none); ``fresh`` reads it from the data mart now."""
        if fresh:
            return self._by_id(deployment_id)
        return self._cached(f"id:{deployment_id}", lambda: self._by_id(deployment_id))

    def recent_deployment(self, deployment_id: str) -> Deployment | None:
        """The deployment as :meth:`deployment` gives it if that needs no data mart read (None: it does)."""
        return self._recent(f"id:{deployment_id}")

    def _by_id(self, deployment_id: str) -> Deployment:
        check_identifier(deployment_id, "deployment_id", status=404)  # the same 404 on every database
        try:
            return get_deployment(deployment_id, engine=self.engine)
        except DeploymentError as error:
            raise InputError(str(error), field="deployment_id", status=404) from None

    def by_model_name(self, name: str) -> Deployment:
        """A deployment by name when exactly one deployment has that name, else by id."""
        return self._cached(f"name:{name}", lambda: self._by_name(name))

    def _by_name(self, name: str) -> Deployment:
        if not is_valid_name(name):  # no deployment has such a name or id: the same 404 on every database
            raise InputError(f"no deployed model named {shown(name)}", field="name", status=404)
        named = find_deployments(name=name, engine=self.engine)
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            spaces = ", ".join(f"{d.space}: {d.deployment_id}" for d in named)
            raise InputError(f"{name!r} is deployed in several spaces; use a deployment id ({spaces})", field="name")
        try:
            return get_deployment(name, engine=self.engine)
        except DeploymentError:
            raise InputError(f"no deployed model named {name!r}", field="name", status=404) from None

    def warm_up(self) -> None:
        """Load the models of all current deployments, so that first requests are not slow."""
        try:
            for found in find_deployments(engine=self.engine):
                self.scorer(found.model_id)
        except ModelUnavailable:  # logged in one line; the requests that need the model answer 503
            pass
        except Exception:
            _LOG.exception("warm-up: could not load every deployed model")


# ---------------------------------------------------------------- parsing and scoring


@dataclass(frozen=True)
class Scored:
    """What scoring returns per record, in the order sent: the decision, the probabilities of
    :data:`utils.data.CLASS_ORDER`, and the id under which the record is stored in the data mart."""

    labels: list[str]
    probabilities: list[list[float]]
    transaction_ids: list[str]
    #: Per record, the fields inside the contract but outside the training data's ranges (None: none).
    out_of_range: list[list[str] | None] | None = None


def concat(blocks: list[Columns]) -> Columns:
    """Validated blocks of columns as one block (the rows of the first block first)."""
    if len(blocks) == 1:
        return blocks[0]
    return {name: [value for block in blocks for value in block[name]] for name in blocks[0]}


def parse_blocks(blocks: list[InputData], *, max_rows: int = MAX_ROWS, label: bool = False) -> list[Columns]:
    """Validate WML v4 ``input_data`` blocks against the contract (and their rows against ``max_rows``)."""
    check_row_count(sum(len(block.values) for block in blocks), max_rows)
    return [parse_fields_values(block.fields, block.values, label=label) for block in blocks]


#: Stores payload records durably, returning their count once they are: the service's ``PayloadWriter.store``
#: (journal or group commit), ``Service.payload.commit`` or ``functools.partial(datamart.insert_payload, engine)``.
PayloadStore = Callable[[Sequence[dict]], int]


def payload_records(
    deployment: Deployment,
    columns: Columns,
    labels: list[str],
    probabilities: list[list[float]],
    out_of_range: list[list[str] | None] | None = None,
) -> list[dict]:
    """Scored records as the data mart stores them, a new transaction id each, with the fields of each that lie
    outside the training data's ranges (``out_of_range``)."""
    flags = out_of_range or [None] * len(labels)
    now = utc_now()
    return [
        {
            "transaction_id": datamart.new_id(),
            "deployment_id": deployment.deployment_id,
            "model_id": deployment.model_id,
            "scored_at": now,
            "inputs": inputs,
            "prediction": label,
            "probability_no_risk": pair[0],
            "probability_risk": pair[1],
            "out_of_range": flagged,
        }
        for inputs, label, pair, flagged in zip(records(columns), labels, probabilities, flags, strict=True)
    ]


def scored_records(scorer: Scorer, deployment: Deployment, columns: Columns) -> tuple[Scored, list[dict]]:
    """Score validated columns with ``scorer``: the answer, and the payload records to store (flagged where a value
    lies outside the training data's ranges) before it is given."""
    labels, probabilities = scorer.predict(columns)
    flags = scorer.out_of_range(columns)
    rows = payload_records(deployment, columns, labels, probabilities, flags)
    return Scored(labels, probabilities, [row["transaction_id"] for row in rows], flags), rows


def score(store: PayloadStore, scorer: Scorer, deployment: Deployment, columns: Columns) -> Scored:
    """Score validated columns with ``scorer`` and store every record with ``store`` before returning."""
    scored, rows = scored_records(scorer, deployment, columns)
    store(rows)
    note_accepted(deployment.deployment_id, len(rows))
    return scored


def wml_response(deployment: Deployment, blocks: list[Columns], scored: Scored) -> ScoringResponse:
    """The WML v4 response: one block per input block, in the order sent (built from valid values, not checked)."""
    predictions, start = [], 0
    for block in blocks:
        end = start + len(block[FEATURES[0]])
        pairs = zip(scored.labels[start:end], scored.probabilities[start:end], strict=True)
        values = [[label, pair] for label, pair in pairs]
        predictions.append(
            Predictions.model_construct(
                fields=["prediction", "probability"], values=values, transaction_ids=scored.transaction_ids[start:end]
            )
        )
        start = end
    return ScoringResponse.model_construct(
        predictions=predictions, deployment_id=deployment.deployment_id, model_id=deployment.model_id
    )


def predict(service: Service, deployment_id: str, request: ScoringRequest) -> ScoringResponse:
    """Score a WML v4 request for a deployment and log its records (what ``POST .../predictions`` does)."""
    deployment = service.deployment(deployment_id)
    blocks = parse_blocks(request.input_data, max_rows=service.settings.max_rows)
    scorer = service.scorer(deployment.model_id)
    return wml_response(deployment, blocks, score(service.payload_writer.store, scorer, deployment, concat(blocks)))


def model_metadata(service: Service, name: str) -> ModelMetadata:
    """Inputs (one per field) and outputs of the model deployed as ``name``."""
    deployment = service.by_model_name(name)
    inputs = [
        TensorMetadata(name=field, datatype="BYTES" if field in CATEGORIES else "INT64", shape=[-1])
        for field in FEATURES
    ]
    outputs = [TensorMetadata(name=name, datatype=kind, shape=shape) for name, (kind, shape) in V2_OUTPUTS.items()]
    return ModelMetadata(
        name=name, versions=[deployment.model_id], platform="scikit-learn", inputs=inputs, outputs=outputs
    )


def readiness(service: Service) -> str | None:
    """Why the service is not ready (its data mart cannot be reached or written, or its file is gone), or None."""
    try:
        with datamart.without_catch_up():
            datamart.check(service.engine)
    except datamart.DatamartUnavailable as error:
        return str(error)
    except SQLAlchemyError as error:
        return f"the data mart is not reachable: {type(error).__name__}"
    return None


# ---------------------------------------------------------------- feedback and deployments


#: What a feedback request may hold: WML v4 blocks, a JSON list of row objects, or CSV text.
Feedback = FeedbackRequest | list | str | bytes


def _raw_feedback(request: Feedback, max_rows: int) -> dict[str, list]:
    """The columns of a feedback request as sent, rows numbered across the request."""
    if isinstance(request, FeedbackRequest):
        check_row_count(sum(len(block.values) for block in request.input_data), max_rows)
        blocks = [
            block_columns(block.fields, block.values, label=True, optional=(TRANSACTION_FIELD,))
            for block in request.input_data
        ]
        names = (*FEATURES, LABEL, TRANSACTION_FIELD)
        return {n: [v for b in blocks for v in b.get(n, [None] * len(b[LABEL]))] for n in names}
    columns = row_object_columns(request) if isinstance(request, list) else csv_columns(request)
    check_row_count(len(columns[LABEL]), max_rows, field="body")
    return columns


def _check_links(service: Service, deployment: Deployment, links: list[str | None]) -> None:
    """Refuse transaction ids that name no payload record of the deployment, each by its row."""
    named = {link for link in links if link is not None}
    known = logged_transactions(service.engine, deployment.deployment_id, named) if named else set()
    unknown = [
        Fault(TRANSACTION_FIELD, row, f"{TRANSACTION_FIELD} {link!r} is no prediction of this deployment")
        for row, link in enumerate(links)
        if link is not None and link not in known
    ]
    if unknown:
        raise contract_error(unknown, rule="the rule that feedback names a logged prediction")


def record_feedback(service: Service, deployment_id: str, request: Feedback) -> FeedbackResponse:
    """Store labelled records (the 20 fields and ``Risk``) for a deployment's quality monitoring.

    ``request`` is WML v4 blocks, a list of row objects or CSV text; a record's optional ``transaction_id``
    links it to the logged prediction it labels, whose probability quality monitoring then uses.
    """
    deployment = service.deployment(deployment_id)
    columns, links = feedback_columns(_raw_feedback(request, service.settings.max_rows))
    _check_links(service, deployment, links)
    now = utc_now()
    rows = [
        {
            "feedback_id": datamart.new_id(),
            "deployment_id": deployment.deployment_id,
            "recorded_at": now,
            "label": record.pop(LABEL),
            "inputs": record,
            "transaction_id": link,
        }
        for record, link in zip(records(columns), links, strict=True)
    ]
    datamart.insert_feedback(service.engine, rows)
    return FeedbackResponse(
        deployment_id=deployment.deployment_id, records=len(rows), feedback_ids=[r["feedback_id"] for r in rows]
    )


def list_deployments(service: Service, space: str | None = None, name: str | None = None) -> DeploymentList:
    """The deployments, optionally of one space and/or name (none for a name no deployment can have)."""
    if name is not None and not is_valid_name(name):
        return DeploymentList(resources=[])
    found = find_deployments(name=name, space=space, engine=service.engine)
    return DeploymentList(resources=[DeploymentInfo(**d.as_dict()) for d in found])


def create_deployment(service: Service, request: DeploymentRequest) -> DeploymentInfo:
    """Deploy a registered model version (replacing ``name`` in ``space``) and load it in this process."""
    try:
        created = deploy(
            request.model_id, name=request.name, space=request.space, engine=service.engine, registry=service.registry
        )
    except ProductionCheckError as error:  # prod without an approved pre-prod evaluation: says what is missing
        raise InputError(str(error), field="model_id", status=409) from None
    except DeploymentError as error:  # a name outside the documented character set
        raise InputError(str(error), field="name") from None
    except ModelNotFound as error:  # a well-formed id of no registered version
        raise InputError(str(error), field="model_id", status=404) from None
    except (RegistryError, ValueError) as error:
        raise InputError(str(error), field="model_id") from None
    service.scorer(created.model_id)
    service.forget_deployments()
    return DeploymentInfo(**created.as_dict())


def deployment_info(service: Service, deployment_id: str) -> DeploymentInfo:
    """One deployment, read from the data mart now."""
    return DeploymentInfo(**service.deployment(deployment_id, fresh=True).as_dict())


def remove_deployment(service: Service, deployment_id: str) -> None:
    """Delete a deployment (its payload and feedback records stay in the data mart)."""
    check_identifier(deployment_id, "deployment_id", status=404)
    try:
        delete_deployment(deployment_id, engine=service.engine, registry=service.registry)
    except DeploymentError as error:
        raise InputError(str(error), field="deployment_id", status=404) from None
    service.forget_deployments()
