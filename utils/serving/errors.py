"""Every error as JSON ``{"error": ..., "field": ..., "row": ...}``: the exception handlers and the body limit.

Client input never causes a 500: contract violations (:class:`utils.scoring.InputError`) and request validation
errors become 4xx naming the field and row at fault; a model that cannot be loaded, an unreachable data mart and
a SQLite data mart file removed or replaced under the running server become 503; anything else is a logged 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from utils.datamart import DatamartUnavailable
from utils.scoring import InputError
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


async def _input_error(_: Request, error: InputError) -> JSONResponse:
    return error_response(error.status, error.message, error.field, error.row)


async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return error_response(400, f"malformed JSON: {detail} at character {first['loc'][-1]}", "body")
    field, row = location(tuple(first["loc"]))
    if field == "body" and isinstance(first.get("input"), bytes | str):
        return error_response(400, "the body must be JSON: send the header Content-Type: application/json", field)
    return error_response(400, f"{field}: {first['msg']}", field, row)


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    field = "body" if error.status_code == 413 else None
    return error_response(error.status_code, str(error.detail), field, headers=getattr(error, "headers", None))


async def _model_unavailable(_: Request, error: ModelUnavailable) -> JSONResponse:
    return error_response(503, str(error))


async def _datamart_unavailable(_: Request, error: SQLAlchemyError) -> JSONResponse:
    _LOG.exception("data mart error")
    return error_response(503, f"the data mart cannot be written or read ({type(error).__name__}); nothing was stored")


async def _datamart_gone(_: Request, error: DatamartUnavailable) -> JSONResponse:
    _LOG.error("%s", error)
    return error_response(503, str(error))


async def _server_error(_: Request, error: Exception) -> JSONResponse:
    _LOG.exception("unexpected error")
    return error_response(500, f"internal server error ({type(error).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception with the JSON error body."""
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ModelUnavailable, _model_unavailable)
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
