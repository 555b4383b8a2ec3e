"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``, messages in zh-CN or en."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.routing import Route

from backend.i18n import Locale, request_locale
from geo.errors import GeoInputError, InvalidCoordinateError, UnknownCoordSystemError

log = logging.getLogger(__name__)


class AppError(Exception):
    """A domain error with an HTTP status, a stable machine code and a bilingual message."""

    def __init__(
        self,
        status: int,
        code: str,
        message_zh: str,
        message_en: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message_en}")
        # Some refusals must still persist what they did (a failed sign-in counted, a reused token's family
        # revoked); the request boundary commits instead of rolling back when this is set.
        self.keep_changes = keep_changes
        self.status = status
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.details = details
        self.headers = dict(headers or {})

    def message(self, locale: Locale) -> str:
        """The message in the caller's locale."""
        return self.message_zh if locale == "zh-CN" else self.message_en


def not_found(what_zh: str = "资源", what_en: str = "resource") -> AppError:
    """A 404 that says nothing about whether the thing exists outside the caller's scope."""
    return AppError(404, "not_found", f"{what_zh}不存在", f"{what_en} not found")


def forbidden(message_zh: str = "无权执行此操作", message_en: str = "not allowed") -> AppError:
    """A 403 for an authenticated caller acting outside its role or scope."""
    return AppError(403, "forbidden", message_zh, message_en)


def conflict(code: str, message_zh: str, message_en: str, details: Any = None) -> AppError:
    """A 409 for a request that clashes with existing state."""
    return AppError(409, code, message_zh, message_en, details)


class ErrorDetail(BaseModel):
    """The inside of the error shape."""

    code: str
    message: str
    details: Any = None


class ApiError(BaseModel):
    """The one JSON error shape (named so no client generator's language reserves it)."""

    error: ErrorDetail


#: The former name, kept for imports.
ErrorResponse = ApiError


Responses = dict[int | str, dict[str, Any]]


def error_responses(*statuses: int, codes: Mapping[int, Sequence[str]] | None = None) -> Responses:
    """OpenAPI ``responses=`` entries for the given statuses, all with the error shape.

    ``codes`` names error codes the contract cannot find in the route's code by itself (``backend/contract.py``
    reads most of them from the ``AppError``s the route raises); they join the operation's ``x-error-codes``.
    """
    declared = dict(codes or {})
    responses: Responses = {}
    for status in (*statuses, *(s for s in declared if s not in statuses)):
        entry: dict[str, Any] = {
            "model": ApiError,
            "description": _STATUS_CODES.get(status, ("", "", "error"))[2],
        }
        if status in declared:
            entry["x-error-codes"] = list(declared[status])
        responses[status] = entry
    return responses


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The single JSON error shape."""
    return {"error": {"code": code, "message": message, "details": details}}


#: Pydantic error types we raise ourselves (``PydanticCustomError``) whose type becomes the top-level code.
DOMAIN_VALIDATION_CODES = frozenset(
    {
        "invalid_uscc",
        "invalid_coordinates",
        "invalid_coord_system",
        "invalid_jurisdiction_code",
        "invalid_push_provider",
        "invalid_push_token",
    }
)

_STATUS_CODES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "请求无效", "bad request"),
    401: ("unauthorized", "未登录或凭证无效", "not authenticated"),
    403: ("forbidden", "无权执行此操作", "not allowed"),
    404: ("not_found", "资源不存在", "not found"),
    405: ("method_not_allowed", "不支持该请求方法", "method not allowed"),
    406: ("not_acceptable", "不支持请求的格式", "not acceptable"),
    409: ("conflict", "请求与现有数据冲突", "conflict"),
    413: ("payload_too_large", "请求内容过大", "payload too large"),
    415: ("unsupported_media_type", "不支持的内容类型", "unsupported media type"),
    426: (
        "app_version_unsupported",
        "应用版本过旧，请升级",
        "app version no longer supported; update the app",
    ),
    429: ("rate_limited", "请求过于频繁，请稍后再试", "too many requests"),
}


def _jsonable(value: Any) -> Any:
    """Make validation-error details JSON-safe (they may hold bytes, exceptions or NaN from hostile input)."""
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_jsonable(v) for v in value]
    text = repr(value) if isinstance(value, bytes | bytearray) else str(value)
    return text[:200]


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        item = {"loc": _jsonable(list(err.get("loc", ()))), "type": err.get("type"), "msg": err.get("msg")}
        ctx = err.get("ctx")
        if ctx:
            item["ctx"] = _jsonable({k: v for k, v in ctx.items() if k != "error"})
        details.append(item)
    return details


def _allowed_methods(routes: Sequence[Any], path: str) -> set[str]:
    """The methods of the resource ``path`` names: the routes whose template is ``path`` itself if any (so
    ``/things/new`` is not also ``/things/{thing_id}``), else every template matching it."""
    matches = list(_matching_routes(routes, path))
    exact = [route for route, literal in matches if literal]
    return {method for route in (exact or [route for route, _ in matches]) for method in route.methods or ()}


def _matching_routes(routes: Sequence[Any], path: str, prefix: str = "") -> Iterator[tuple[Route, bool]]:
    """Routes whose path template matches ``path`` (descending into included routers), and whether literally."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:  # FastAPI's lazily included router
            context = getattr(route, "include_context", None)
            yield from _matching_routes(
                original.routes, path, prefix + (getattr(context, "prefix", "") or "")
            )
        elif (
            isinstance(route, Route)
            and route.methods
            and path.startswith(prefix)
            and route.path_regex.match(path[len(prefix) :])
        ):
            yield route, "{" not in route.path and prefix + route.path == path


#: The largest value of an ``integer`` id column (PostgreSQL refuses to compare a bigger one with it).
_INT4_MAX = 2**31 - 1


def _path_id_beyond_column(request: Request) -> bool:
    """Whether a path parameter ``*_id`` is a well-formed integer too large for an ``integer`` id column."""
    return any(
        name.endswith("_id")
        and isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and int(value) > _INT4_MAX
        for name, value in request.path_params.items()
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception the app can meet to the one error shape."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        locale = request_locale(request)
        return JSONResponse(
            error_body(exc.code, exc.message(locale), _jsonable(exc.details)),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        locale = request_locale(request)
        details = _validation_details(exc)
        domain = next((d["type"] for d in details if d["type"] in DOMAIN_VALIDATION_CODES), None)
        if domain is not None:
            first = next(d for d in details if d["type"] == domain)
            return JSONResponse(error_body(domain, str(first["msg"]), details), status_code=422)
        if any(d["type"] == "json_invalid" for d in details):
            msg = "请求体不是合法的 JSON" if locale == "zh-CN" else "request body is not valid JSON"
            return JSONResponse(error_body("invalid_json", msg, details), status_code=422)
        msg = "请求参数校验失败" if locale == "zh-CN" else "request validation failed"
        return JSONResponse(error_body("validation_error", msg, details), status_code=422)

    @app.exception_handler(GeoInputError)
    async def _geo_input(request: Request, exc: GeoInputError) -> JSONResponse:
        locale = request_locale(request)
        if isinstance(exc, InvalidCoordinateError):
            code = "invalid_coordinates"
        elif isinstance(exc, UnknownCoordSystemError):
            code = "invalid_coord_system"
        else:
            code = exc.code
        message = exc.message_zh if locale == "zh-CN" else str(exc)
        return JSONResponse(error_body(code, message, {"reason": exc.code}), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        locale = request_locale(request)
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI answers 400 when a JSON body is not UTF-8; it is invalid JSON (RFC 8259 §8.1) like any
            # other undecodable body, so it gets the same documented 422.
            msg = "请求体不是合法的 JSON" if locale == "zh-CN" else "request body is not valid JSON"
            details = [{"loc": ["body"], "type": "json_invalid", "msg": "body is not UTF-8"}]
            return JSONResponse(error_body("invalid_json", msg, details), status_code=422)
        if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
            # Likewise a form body that does not parse (Starlette says 400): the documented 422 for bad bodies.
            msg = "请求体不是合法的表单" if locale == "zh-CN" else "request body is not a valid form"
            details = [{"loc": ["body"], "type": "form_invalid", "msg": str(exc.detail)[:200]}]
            return JSONResponse(error_body("invalid_form", msg, details), status_code=422)
        code, zh, en = _STATUS_CODES.get(exc.status_code, ("http_error", "请求失败", "request failed"))
        message = zh if locale == "zh-CN" else en
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; the resource supports them all.
            allowed = _allowed_methods(request.app.routes, request.url.path)
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        return JSONResponse(error_body(code, message, None), status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    async def _db_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.orig)
        locale = request_locale(request)
        message = "数据库暂时不可用，请稍后重试" if locale == "zh-CN" else "database temporarily unavailable"
        return JSONResponse(
            error_body("service_unavailable", message), status_code=503, headers={"Retry-After": "5"}
        )

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot hold (an id past 64 bits, a NUL character in text, ...) came from the
        # request: the caller's problem, not the server's. SQLSTATE class 22, or SQLite's bind overflow.
        log.warning("request value rejected by the database: %s", getattr(exc, "orig", exc))
        locale = request_locale(request)
        if _path_id_beyond_column(request):
            # A well-formed id no row can have (past the column's integer range): simply not found.
            return JSONResponse(
                error_body("not_found", _STATUS_CODES[404][1 if locale == "zh-CN" else 2]), 404
            )
        message = (
            "参数值超出范围或格式无效"
            if locale == "zh-CN"
            else "a parameter value is out of range or invalid"
        )
        return JSONResponse(error_body("invalid_parameter", message), status_code=422)

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return await _db_unavailable(request, OperationalError(exc.statement, exc.params, exc))
        log.exception("database error", exc_info=exc)
        return await _internal(request, exc)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        locale = request_locale(request)
        message = "服务器内部错误" if locale == "zh-CN" else "internal server error"
        return JSONResponse(error_body("internal_error", message), status_code=500)
