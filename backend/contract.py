"""The app contract: the OpenAPI document that app teams feed to client generators, shaped in one place.

Every route gets, without doing anything itself: an operation id ``resource_verb`` derived from its path and
method, one tag naming its audience (derived from its path), every error status it can send documented with
``ApiError`` (422 included, FastAPI's ``HTTPValidationError`` never appears), and the error codes of each
status in ``x-error-codes``. The codes are read from the route's own code: the ``AppError``s (and the
``not_found``/``forbidden``/``conflict``/``unauthorized``/rate-limit helpers) raised by the endpoint, its
dependencies and the ``backend`` functions they call, plus any codes the route declares with
``error_responses(..., codes=...)``. Component names are made unique and generator-friendly.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, cast

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from backend.app_config import versions
from backend.common.etag import BodyEtagMiddleware
from backend.errors import ApiError

TITLE = "Gongping API"
#: The package name a generator should use (``packageName``/``pubName``/``projectName``): valid in all of them.
PACKAGE_NAME = "gongping_client"

#: The audiences, each one tag: (name, description).
TAGS: tuple[tuple[str, str], ...] = (
    ("public", "公众：扫码、公开查询、GeoReport（无需登录）/ the public: scans, public queries, GeoReport"),
    ("me", "本人：登录、设备、投诉、收件箱 / the signed-in app user: sign-in, devices, complaints, inbox"),
    (
        "staff",
        "监管人员：案件、记录、经营者、计量器具、监督 / bureau staff: cases, records, operators, supervision",
    ),
    ("intake", "机构报送：检定、违法、协会报告与名录 / institutions and associations reporting in"),
    ("exchange", "部门共享：密钥与变更流 / partner departments: keys and the change feed"),
    ("admin", "管理员：账号 / administrators: accounts"),
)

#: Path prefixes to audiences, first match wins; every other ``/api/v1`` route is for staff.
AUDIENCE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/api/v1/public/", "public"),
    ("/q/", "public"),
    ("/open311/", "public"),
    ("/healthz", "public"),
    ("/api/v1/jurisdictions", "public"),
    ("/api/v1/instrument-types", "public"),
    ("/api/v1/rating-rules", "public"),
    ("/api/v1/self-commitment/texts", "public"),
    ("/api/v1/app/", "public"),
    ("/api/v1/me", "me"),
    ("/api/v1/auth/", "me"),
    ("/api/v1/devices", "me"),
    ("/api/v1/complaints", "me"),
    ("/api/v1/uploads", "me"),
    ("/api/v1/supervisor-reports", "me"),
    ("/api/v1/intake/", "intake"),
    ("/api/v1/exchange/", "exchange"),
    ("/api/v1/feed/", "exchange"),
    ("/api/v1/accounts", "admin"),
)

#: Where the derived operation id reads badly: (METHOD, path) to id.
OPERATION_ID_OVERRIDES: dict[tuple[str, str], str] = {
    ("GET", "/q/{token}"): "qr_page_get",
    ("GET", "/healthz"): "health_get",
    ("GET", "/api/v1/me"): "me_get",
    ("GET", "/api/v1/me/notification-preferences"): "me_notification_preferences_get",
    ("PUT", "/api/v1/me/notification-preferences"): "me_notification_preferences_update",
    ("GET", "/api/v1/operators/{operator_id}/rating"): "operators_rating_get",
    ("GET", "/api/v1/operators/{operator_id}/self-commitment"): "operators_self_commitment_get",
    ("POST", "/api/v1/operators/{operator_id}/self-commitment"): "operators_self_commitment_sign",
    ("GET", "/api/v1/records/{record_id}/publication"): "records_publication_get",
    ("GET", "/api/v1/jurisdictions/locate"): "jurisdictions_locate",
    ("GET", "/api/v1/complaints/similar"): "complaints_similar_count",
    ("GET", "/api/v1/inspection-plans/{plan_id}.csv"): "inspection_plans_csv_get",
    ("GET", "/api/v1/public/untrustworthy.json"): "public_untrustworthy_download",
    ("GET", "/api/v1/complaints/{complaint_id}/photos/{photo_id}/{rendition}"): "complaints_photos_get",
    ("GET", "/api/v1/staff/complaints/{complaint_id}/photos/{photo_id}/original"): (
        "staff_complaints_photos_original_get"
    ),
    ("POST", "/api/v1/records/{record_id}/corrections"): "records_corrections_create",
    ("POST", "/api/v1/records/{record_id}/publication/request"): "records_publication_request",
    ("POST", "/api/v1/operators/{operator_id}/activation-codes"): "operators_activation_codes_create",
    ("POST", "/api/v1/auth/device"): "auth_device_register",
    ("POST", "/api/v1/auth/register"): "auth_register",
    ("GET", "/api/v1/cases/overdue"): "cases_overdue_list",
}

#: The codes a status carries whatever the route (raised by the framework, the auth dependencies or the
#: error handlers in ``backend/errors.py``).
GENERIC_CODES: dict[int, tuple[str, ...]] = {
    401: ("not_authenticated", "invalid_token", "token_expired"),
    403: ("forbidden",),
    404: ("not_found",),
    413: ("payload_too_large",),
    415: ("unsupported_media_type",),
    422: ("validation_error", "invalid_json", "invalid_parameter"),
    429: ("rate_limited",),
    503: ("service_unavailable",),
}

_DESCRIPTIONS: dict[int, str] = {
    400: "bad request",
    401: "not authenticated, or the token is invalid or expired",
    403: "not allowed",
    404: "not found (or outside the caller's scope)",
    409: "conflicts with the current state",
    410: "gone",
    413: "payload too large",
    415: "unsupported media type",
    422: "the request is invalid (see `error.code` and `error.details`)",
    426: "this app version is no longer supported (`X-App-Version`): `error.details.update_url` says where to update",
    429: "too many requests (see `Retry-After`)",
    503: "temporarily unavailable (see `Retry-After`)",
}

_ERROR_REF = {"$ref": f"#/components/schemas/{ApiError.__name__}"}

#: The request header of a conditional GET, a parameter of every operation that can answer 304.
IF_NONE_MATCH_PARAMETER: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "the `ETag` of the answer you already hold: 304 without a body while it is still current",
}
_VALIDATOR_HEADERS: dict[str, Any] = {
    "ETag": {"description": "send it back as `If-None-Match`", "schema": {"type": "string"}},
    "Cache-Control": {"description": "how long the answer may be reused", "schema": {"type": "string"}},
}
_NOT_MODIFIED = "unchanged since the `ETag` sent in `If-None-Match` (no body)"
_METHODS = ("get", "put", "post", "delete", "patch")


# --- operation ids and tags ------------------------------------------------------------------------------


def _snake(segment: str) -> str:
    return re.sub(r"[^a-z]+", "_", segment.lower()).strip("_")


def derive_operation_id(method: str, path: str) -> str:
    """``resource_verb`` for a route: literal path segments joined, then a verb from the method and shape."""
    override = OPERATION_ID_OVERRIDES.get((method, path))
    if override is not None:
        return override
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        segments = segments[2:]
    elif segments[:2] == ["open311", "v2"]:
        segments = ["georeport", *segments[2:]]
    # ``requests.{response_format}``: the format is a parameter, not part of the name.
    segments = [s.split(".", 1)[0] if s.endswith("}") and "." in s else s for s in segments]
    literal = [_snake(s) for s in segments if not s.startswith("{")]
    ends_in_parameter = segments[-1].startswith("{")
    after_parameter = len(segments) > 1 and segments[-2].startswith("{")
    if method == "GET":
        verb = "get" if ends_in_parameter else "list"
    elif method == "POST":
        # A literal after an id is an action on that thing (``cases/{id}/accept``); else a create.
        verb = "" if after_parameter and not ends_in_parameter else "create"
    elif method in ("PATCH", "PUT"):
        verb = "update"
    else:
        verb = method.lower()
    return "_".join(part for part in (*literal, verb) if part)


def operation_id(route: APIRoute | RouteContext) -> str:
    """FastAPI's ``generate_unique_id_function``: the route's ``resource_verb`` id."""
    method = sorted(route.methods or {"GET"})[0]
    return derive_operation_id(method, route.path_format or "/")


def audience_of(path: str) -> str:
    """The one tag of an operation: who calls it, from its path."""
    for prefix, tag in AUDIENCE_PREFIXES:
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return tag
    return "staff"


# --- error codes read from the code ------------------------------------------------------------------------

_HELPER_CODES: dict[str, tuple[int, str | None]] = {
    # helper name: (status, code; None when the code is the first argument)
    "not_found": (404, "not_found"),
    "forbidden": (403, "forbidden"),
    "conflict": (409, None),
    "unauthorized": (401, None),
    "limit": (429, "rate_limited"),
    "hit": (429, "rate_limited"),
}


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _literal_str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@cache
def _function_codes(function: Callable[..., Any]) -> frozenset[tuple[int, str]]:
    """(status, code) pairs raised in ``function`` or the functions it calls (transitively) in ``backend``
    or in its own module."""
    found: set[tuple[int, str]] = set()
    root = inspect.unwrap(function)
    modules = ("backend.", f"{getattr(root, '__module__', None) or 'backend'}.")
    stack: list[Callable[..., Any]] = [root]
    seen: set[Callable[..., Any]] = set()
    while stack:
        current = inspect.unwrap(stack.pop())
        if current in seen or not inspect.isfunction(current):
            continue
        seen.add(current)
        for status_code, callee in _call_sites(current, modules):
            if status_code is not None:
                found.add(status_code)
            if callee is not None:
                stack.append(callee)
    return frozenset(found)


@cache
def _call_sites(
    function: Callable[..., Any], modules: tuple[str, ...]
) -> tuple[tuple[tuple[int, str] | None, Any], ...]:
    """What ``function`` raises and calls, read once per function."""
    return tuple(_calls(function, modules))


def _calls(
    function: Callable[..., Any], modules: tuple[str, ...]
) -> Iterator[tuple[tuple[int, str] | None, Any]]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return
    namespace = dict(function.__globals__)
    if function.__closure__:  # helpers defined in an enclosing function
        namespace.update(inspect.getclosurevars(function).nonlocals)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _resolve(node.func, namespace)
        name = getattr(target, "__name__", None)
        module = getattr(target, "__module__", "") or ""
        if name == "AppError" and module == "backend.errors":
            status = node.args[0] if node.args else None
            code = _literal_str(node.args[1]) if len(node.args) > 1 else None
            if isinstance(status, ast.Constant) and isinstance(status.value, int) and code:
                yield (status.value, code), None
            continue
        helper = _HELPER_CODES.get(name or "")
        if helper is not None and module in ("backend.errors", "backend.ratelimit", "backend.auth.security"):
            helper_status, helper_code = helper
            helper_code = helper_code or _literal_str(node.args[0] if node.args else None)
            if helper_code:
                yield (helper_status, helper_code), None
            continue
        if inspect.isfunction(target) and f"{module}.".startswith(modules):
            yield None, target
        # A local refusal helper called with a literal status and code (``_refusal(409, "already_member")``).
        if len(node.args) > 1 and isinstance(node.args[0], ast.Constant):
            status_value, code_value = node.args[0].value, _literal_str(node.args[1])
            if isinstance(status_value, int) and 400 <= status_value < 600 and code_value:
                yield (status_value, code_value), None
        # A function handed to another (``run_in_threadpool(_submit, ...)``) runs as part of the route too.
        for argument in node.args:
            passed = _resolve(argument, namespace)
            if inspect.isfunction(passed) and f"{passed.__module__}.".startswith(modules):
                yield None, passed


def _dependant_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _dependant_calls(sub)


def route_error_codes(route: APIRoute | RouteContext) -> dict[int, set[str]]:
    """Status to codes for everything the route's endpoint and dependencies can raise."""
    codes: dict[int, set[str]] = {}
    for call in _dependant_calls(route.dependant):
        for status, code in _function_codes(call):
            codes.setdefault(status, set()).add(code)
    return codes


# --- the document ------------------------------------------------------------------------------------------


def _walk_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.rsplit("/", 1)[-1]
                out[key] = f"#/components/schemas/{renames.get(name, name)}"
            else:
                out[key] = _walk_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_walk_refs(v, renames) for v in node]
    return node


def _plain_refs(node: Any) -> Any:
    """A ``$ref`` with siblings (a default, a description) as ``allOf: [$ref]`` beside them: OpenAPI 3.0's
    spelling, which every generator reads (openapi-generator loses the reference's name otherwise)."""
    if isinstance(node, dict):
        out = {key: _plain_refs(value) for key, value in node.items()}
        if "$ref" in out and len(out) > 1:
            out["allOf"] = [{"$ref": out.pop("$ref")}]
        return out
    if isinstance(node, list):
        return [_plain_refs(v) for v in node]
    return node


def _parameter_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without FastAPI's title and ``anyOf: [X, null]`` (an absent parameter is the null):
    generators otherwise make a model named after the parameter (``Source``, reserved in Dart) for the union."""
    schema = {key: value for key, value in schema.items() if key != "title"}
    members = schema.get("anyOf", [])
    others = [member for member in members if member != {"type": "null"}]
    if len(others) == 1 and len(members) == 2:
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        schema = {**others[0], **rest}
    return schema


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def schema_name(name: str) -> str:
    """A component name every generator keeps as it is: no module paths, no underscores."""
    if "__" in name:  # FastAPI's ``backend__complaints__schemas__RoutingCandidate`` for a clash
        parts = name.split("__")
        return _camel(parts[1]) + parts[-1]
    if name.startswith("Body_"):  # a form body, named after its operation
        return _camel(name.removeprefix("Body_")) + "Form"
    match = re.fullmatch(r"([A-Za-z]+)_(\w+?)_", name)
    if match:  # a generic model: Page_CaseSummary_ -> CaseSummaryPage
        return _camel(match.group(2)) + match.group(1)
    return name


def _add_models(schemas: dict[str, Any], models: tuple[type[BaseModel], ...]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)


def _has_body_or_parameters(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _document_errors(operation: dict[str, Any], route: APIRoute | RouteContext | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    derived = route_error_codes(route) if route is not None else {}
    statuses = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    statuses |= set(derived)
    if _has_body_or_parameters(operation):
        statuses.add(422)
    if operation.get("security"):
        statuses.add(401)
    if operation.get("requestBody"):
        statuses.add(413)  # the body limit applies to every body
    statuses.add(503)  # the database may be unavailable to any request
    codes_by_status: dict[str, list[str]] = {}
    for status in sorted(statuses):
        entry = responses.setdefault(str(status), {})
        declared = entry.pop("x-error-codes", [])
        entry.setdefault("description", _DESCRIPTIONS.get(status, "error"))
        if entry.get("description") in ("", "error", "Successful Response"):
            entry["description"] = _DESCRIPTIONS.get(status, "error")
        content = entry.setdefault("content", {})
        content["application/json"] = {"schema": _ERROR_REF}
        codes = set(GENERIC_CODES.get(status, ())) | set(declared) | derived.get(status, set())
        if status == 422 and not _has_body_or_parameters(operation):
            codes -= {"validation_error", "invalid_json", "invalid_parameter"}
        if status == 401 and not operation.get("security"):
            codes -= set(GENERIC_CODES[401])
            codes |= derived.get(401, set())
        if codes:
            codes_by_status[str(status)] = sorted(codes)
    operation["x-error-codes"] = codes_by_status


def _type_untyped_answers(operation: dict[str, Any]) -> None:
    """Image and octet-stream answers are bytes (``format: binary``), text answers strings: generators then
    return them as such (an answer without a schema is a warning and an untyped method in most of them)."""
    for status, response in operation.get("responses", {}).items():
        for media_type, content in response.get("content", {}).items():
            binary = media_type.startswith("image/") or media_type == "application/octet-stream"
            if binary and status.startswith("2"):
                content["schema"] = {"type": "string", "format": "binary"}
            elif media_type.startswith("text/") and not content.get("schema"):
                content["schema"] = {"type": "string"}


def _body_etag_paths(app: FastAPI) -> tuple[tuple[str, ...], frozenset[str]]:
    """The prefixes and exact paths whose GETs :class:`BodyEtagMiddleware` tags (and may answer with 304)."""
    for middleware in app.user_middleware:
        if cast(object, middleware.cls) is BodyEtagMiddleware:
            options: dict[str, Any] = dict(middleware.kwargs)
            return tuple(options.get("prefixes", ())), frozenset(options.get("private_paths", ()))
    return (), frozenset()


def _document_polling(operation: dict[str, Any]) -> None:
    """An operation that can answer 304 takes ``If-None-Match`` and says so, and its 200 and 304 carry the
    validator: a generated client then sends the header as an argument and reads 304 as an expected answer."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    not_modified = responses.setdefault("304", {})
    not_modified["description"] = _NOT_MODIFIED
    not_modified.pop("content", None)
    for status in ("200", "304"):
        if status in responses:
            responses[status].setdefault("headers", {}).update(_VALIDATOR_HEADERS)
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    if not any(p.get("name", "").lower() == "if-none-match" for p in parameters):
        parameters.append(dict(IF_NONE_MATCH_PARAMETER))


def _document_app_version(operation: dict[str, Any], path: str) -> None:
    """The API answers 426 to an app older than its platform's minimum (``X-App-Version``), except the config."""
    if path.startswith(versions.CHECKED_PREFIX) and path not in versions.EXEMPT_PATHS:
        entry = operation.setdefault("responses", {}).setdefault("426", {})
        entry["x-error-codes"] = [*entry.get("x-error-codes", []), "app_version_unsupported"]


def build_document(app: FastAPI, extra_models: tuple[type[BaseModel], ...] = ()) -> dict[str, Any]:
    """The whole OpenAPI document of ``app``, contract rules applied."""
    document = get_openapi(
        title=TITLE,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    document["info"]["x-package-name"] = PACKAGE_NAME
    routes = {
        (method.lower(), context.path_format): context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    }
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _add_models(schemas, extra_models)
    etag_prefixes, etag_paths = _body_etag_paths(app)
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation["tags"] = [audience_of(path)]
            for parameter in operation.get("parameters", ()):
                parameter["schema"] = _parameter_schema(parameter.get("schema", {}))
            _type_untyped_answers(operation)
            if "304" in operation.get("responses", {}) or (
                method == "get" and (path in etag_paths or path.startswith(etag_prefixes))
            ):
                _document_polling(operation)
            _document_app_version(operation, path)
            _document_errors(operation, routes.get((method, path)))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    renames = {name: schema_name(name) for name in schemas if schema_name(name) != name}
    clashes = set(renames.values()) & (set(schemas) - set(renames))
    if clashes or len(set(renames.values())) != len(renames):
        raise RuntimeError(f"OpenAPI component names clash after renaming: {sorted(clashes)}")
    document = dict(_plain_refs(_walk_refs(document, renames)))
    walked = document["components"]["schemas"]
    for old, new in renames.items():
        walked[old]["title"] = new  # some generators name models after the title, not the component's key
    document["components"]["schemas"] = {renames.get(k, k): v for k, v in sorted(walked.items())}
    document["tags"] = [{"name": name, "description": text} for name, text in TAGS]
    return document


#: ReDoc's page may load nothing from elsewhere (its footer logo comes from the vendor's CDN otherwise).
REDOC_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
)


def install_redoc(app: FastAPI, path: str, assets_url: str) -> None:
    """ReDoc at ``path`` with its script from ``assets_url`` (our own package) and nothing from elsewhere."""

    @app.get(path, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets_url}/redoc.standalone.js",
            redoc_favicon_url=f"{assets_url}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_CSP
        return page


def install_contract(app: FastAPI, extra_models: tuple[type[BaseModel], ...] = ()) -> None:
    """Serve the contract's document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, extra_models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
