"""``POST /ml/v4/deployments/{id}/predictions`` answered without FastAPI when the request is well-formed.

:class:`DirectPredictions` (ASGI middleware, inside the request meter and outside the body limit) reads a scoring
request's body itself. When the request carries the API key (if the server has one), declares JSON and holds a
body that parses as a valid :class:`~utils.serving.schemas.ScoringRequest`, it does what the FastAPI route does
(:func:`utils.serving.service.predict`) and answers the same bytes; an error raised there is answered by the app's
own exception handler. Any other request, and any body over the limit, goes on to FastAPI (the body replayed as
received), which answers it as it always has.

A small request for a deployment and model at hand is scored on the event loop, and its records made durable there
when that needs no wait (appended to the payload journal of a SQLite file, see
:meth:`~utils.serving.payload_writer.PayloadWriter.store_now`); otherwise the commit, or the whole request, goes to
a worker thread, so a locked or slow data mart never blocks the event loop.

FastAPI's routing, dependency solving and body model cost a one-record request about as much as its scoring and
its data mart transaction together; the route stays declared, so the OpenAPI document and ``/docs`` are unchanged.
"""

from __future__ import annotations

import hmac
import json

import anyio
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from utils.serving import service as ops
from utils.serving.metrics import PREDICTIONS_PATH, note_accepted
from utils.serving.schemas import ScoringRequest


def key_accepted(api_key: str | None, token: str | None) -> bool:
    """The server has no API key, or ``token`` is it (compared in constant time)."""
    return not api_key or (token is not None and hmac.compare_digest(token.encode(), api_key.encode()))


#: Most records a request may hold to be scored on the event loop (a tenth of a millisecond or so of work, less
#: than FastAPI spends on a request); larger ones are scored in a worker thread.
LOOP_ROWS = 10


def json_response(reply: BaseModel) -> Response:
    """``reply`` as JSON, serialised once: FastAPI would validate a returned model again in another trip through its
    thread pool, and copy it to a dict before writing it (a route's ``response_model`` still documents it)."""
    return Response(reply.model_dump_json(), media_type="application/json")


def _header(scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _bearer_token(scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, as FastAPI's ``HTTPBearer`` reads it."""
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _declares_json(scope) -> bool:
    return (_header(scope, b"content-type") or "").partition(";")[0].strip().lower() == "application/json"


def _valid_request(body: bytes) -> ScoringRequest | None:
    """The scoring request a body holds, or None when FastAPI would refuse it (it then says why)."""
    try:
        return ScoringRequest.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _replaying(messages: list[dict], receive):
    """A ``receive`` that gives ``messages`` again, then what ``receive`` gives."""
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


class DirectPredictions:
    """ASGI middleware answering well-formed WML v4 scoring requests directly (see the module's docstring).

    ``service`` is the app's :class:`~utils.serving.service.Service`, ``handlers`` the app's exception handlers
    (read at each error, so handlers added later count) and ``limit`` the body limit in bytes.
    """

    def __init__(self, app, service: ops.Service, handlers: dict, limit: int):
        self.app = app
        self.service = service
        self.handlers = handlers
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        found = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            found = PREDICTIONS_PATH.fullmatch(scope["path"])
        if found is None or not self._may_answer(scope):
            return await self.app(scope, receive, send)
        messages, body = await self._read(scope, receive)
        request = _valid_request(body) if body is not None else None
        if request is None:
            return await self.app(scope, _replaying(messages, receive), send)
        try:
            answer = await self._answer(found.group(1), request)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:
                raise  # answered 500 by the app's outermost handler, as from the route
            answer = await handler(Request(scope, receive), error)
        await answer(scope, receive, send)

    def _may_answer(self, scope) -> bool:
        """The request carries the API key (when the server has one) and declares a JSON body."""
        return key_accepted(self.service.settings.api_key, _bearer_token(scope)) and _declares_json(scope)

    async def _read(self, scope, receive) -> tuple[list[dict], bytes | None]:
        """The messages received and the whole body; None for the body when the client left or the body is over
        the limit (declared or sent), which FastAPI and the body limit then answer."""
        declared = _header(scope, b"content-length") or ""
        if declared.isdigit() and int(declared) > self.limit:
            return [], None
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, None
            size += len(message.get("body", b""))
            if size > self.limit:
                return messages, None
            if not message.get("more_body", False):
                break
        return messages, b"".join(message.get("body", b"") for message in messages)

    async def _answer(self, deployment_id: str, request: ScoringRequest) -> Response:
        """What the route answers (:func:`~utils.serving.service.predict`). A request of at most :data:`LOOP_ROWS`
        records for a deployment and model at hand is scored on the event loop, and its records stored there if
        that needs no wait (:meth:`~utils.serving.payload_writer.PayloadWriter.store_now`), else in a worker
        thread; any other request is handled in a worker thread."""
        service = self.service
        deployment = service.recent_deployment(deployment_id)
        scorer = service.loaded_scorer(deployment.model_id) if deployment is not None else None
        if scorer is None or sum(len(block.values) for block in request.input_data) > LOOP_ROWS:
            return await anyio.to_thread.run_sync(self._predict, deployment_id, request)
        blocks = ops.parse_blocks(request.input_data, max_rows=service.settings.max_rows)
        scored, rows = ops.scored_records(scorer, deployment, ops.concat(blocks))
        if not service.payload_writer.store_now(rows):
            await anyio.to_thread.run_sync(service.payload.commit, rows)
        note_accepted(deployment.deployment_id, len(rows))
        return json_response(ops.wml_response(deployment, blocks, scored))

    def _predict(self, deployment_id: str, request: ScoringRequest) -> Response:
        return json_response(ops.predict(self.service, deployment_id, request))

    def _handler(self, error: Exception):
        """The app's handler of ``error`` as its exception middleware finds it (None: the catch-all's 500)."""
        for kind in type(error).__mro__:
            if kind is Exception:
                return None
            handler = self.handlers.get(kind)
            if handler is not None:
                return handler
        return None
