"""Every error as JSON ``{"error": ..., "field": ..., "row": ...}``: the exception handlers and the body limit.

Client input never causes a 500: contract violations (:class:`utils.scoring.InputError`), request validation
errors and bodies the JSON parser refuses become 4xx naming the field (or the body) and row at fault; a model that
cannot be loaded, a server that is stopping, an unreachable data mart and a SQLite data mart file removed or
replaced under the running server become 503. Expected errors are logged in one line at most, without a
traceback and without file paths in the answer; anything else is a 500 logged with its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from utils.datamart import DatamartUnavailable
from utils.scoring import InputError
from utils.serving.group_commit import CommitterClosed
from utils.serving.service import ModelUnavailable

_LOG = logging.getLogger(__name__)


def error_response(
    status_code: int, message: str, field: str | None = None, row: int | None = None, headers=None
) -> JSONResponse:
    """The JSON error body every endpoint answers with."""
    body = {"error": message, "field": field, "row": row}
    return JSONResponse(body, status_code=status_code, headers=headers)


def location(loc: tuple) -> tuple[str, int | None]:
    """Field path and row of a request validation error location such as ('body', 'input_data', 0, 'values', 3)."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    row = None
    if "values" in parts:
        at = parts.index("values")
        if at + 1 < len(parts) and isinstance(parts[at + 1], int):
            row = parts[at + 1]
            parts = parts[: at + 1]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body", row


def body_problem(error: BaseException | None) -> str | None:
    """What is wrong with a body that the JSON parser refused for a reason other than its syntax, if known."""
    if isinstance(error, UnicodeDecodeError):
        return f"the body is not UTF-8 text: byte 0x{error.object[error.start]:02x} at byte {error.start}"
    if isinstance(error, RecursionError):
        return f"the body's JSON nests arrays and objects deeper than the limit of {sys.getrecursionlimit():,} levels"
    if isinstance(error, ValueError) and "digits" in str(error):
        return f"the body holds an integer of over {sys.get_int_max_str_digits():,} digits; no field takes one"
    return None


def _malformed(detail: str, position: Any) -> str:
    return f"malformed JSON: {detail} at character {position}"


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed as JSON, or an :class:`InputError` for the body saying what is wrong."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(_malformed(error.msg, error.pos), field="body") from None
    except (ValueError, RecursionError) as error:
        raise InputError(body_problem(error) or f"the body is not JSON: {error}", field="body") from None


def validate_body(model: type[BaseModel], payload: Any) -> Any:
    """``payload`` as ``model``; its errors are raised as FastAPI's for a declared body (answered by the handler)."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]) from None


async def _input_error(_: Request, error: InputError) -> JSONResponse:
    return JSONResponse(error.as_dict(), status_code=error.status)  # with every fault of the rows at fault


async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return error_response(400, _malformed(detail, first["loc"][-1]), "body")
    field, row = location(tuple(first["loc"]))
    if field == "body" and isinstance(first.get("input"), bytes | str):
        return error_response(400, "the body must be JSON: send the header Content-Type: application/json", field)
    return error_response(400, f"{field}: {first['msg']}", field, row)


def _method_not_allowed(request: Request) -> JSONResponse:
    """405 with ``Allow`` listing the methods of every route on the path (Starlette names only the first's)."""
    methods = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    allowed = ", ".join(sorted(methods))
    message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return error_response(405, message, headers={"Allow": allowed})


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 405:
        return _method_not_allowed(request)
    problem = body_problem(error.__cause__)
    if problem:  # FastAPI's "There was an error parsing the body", with what is wrong
        return error_response(400, problem, "body")
    field = "body" if error.status_code == 413 else None
    return error_response(error.status_code, str(error.detail), field, headers=getattr(error, "headers", None))


async def _unavailable(_: Request, error: ModelUnavailable | CommitterClosed) -> JSONResponse:
    return error_response(503, str(error))


async def _datamart_unavailable(request: Request, error: SQLAlchemyError) -> JSONResponse:
    cause = (str(getattr(error, "orig", None) or error).splitlines() or [""])[0]
    _LOG.error("%s %s: data mart error %s: %s", request.method, request.url.path, type(error).__name__, cause)
    return error_response(503, f"the data mart cannot be written or read ({type(error).__name__}); nothing was stored")


async def _datamart_gone(request: Request, error: DatamartUnavailable) -> JSONResponse:
    _LOG.error("%s %s: %s", request.method, request.url.path, error)
    return error_response(503, str(error))


async def _server_error(_: Request, error: Exception) -> JSONResponse:
    _LOG.exception("unexpected error")
    return error_response(500, f"internal server error ({type(error).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception with the JSON error body."""
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ModelUnavailable, _unavailable)
    app.add_exception_handler(CommitterClosed, _unavailable)  # the server is stopping
    app.add_exception_handler(SQLAlchemyError, _datamart_unavailable)
    app.add_exception_handler(DatamartUnavailable, _datamart_gone)
    app.add_exception_handler(Exception, _server_error)


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with a JSON 413, declared length or not."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request body is over the limit of {self.limit} bytes; send fewer rows per request"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await error_response(413, message, "body")(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, message)
            return event

        await self.app(scope, limited_receive, send)
