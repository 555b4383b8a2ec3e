"""The app contract (backend/contract.py): names, tags, errors and types a client generator relies on."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from backend.contract import TAGS, TITLE, build_document, derive_operation_id, install_contract, operation_id
from backend.errors import AppError, conflict, error_responses, install_error_handlers
from backend.main import create_app

METHODS = ("get", "put", "post", "delete", "patch")
ERROR_REF = "#/components/schemas/ApiError"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, item[m]) for path, item in document["paths"].items() for m in METHODS if m in item]


def test_operation_ids_are_resource_verb_and_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert [i for i in ids if not re.fullmatch(r"^[a-z]+(_[a-z]+)+$", i)] == []
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    by_route = {(m, p): op["operationId"] for p, m, op in _operations(document)}
    assert by_route[("post", "/api/v1/complaints")] == "complaints_create"
    assert by_route[("post", "/api/v1/complaint-form")] == "complaint_form_create"
    assert by_route[("get", "/api/v1/me/notifications")] == "me_notifications_list"
    assert by_route[("post", "/api/v1/cases/{case_id}/accept")] == "cases_accept"


def test_operation_id_derivation() -> None:
    assert derive_operation_id("GET", "/api/v1/operators/{operator_id}/stalls") == "operators_stalls_list"
    assert derive_operation_id("PATCH", "/api/v1/stalls/{stall_id}") == "stalls_update"
    assert derive_operation_id("DELETE", "/api/v1/devices/{device_id}") == "devices_delete"
    assert derive_operation_id("GET", "/open311/v2/requests.{response_format}") == "georeport_requests_list"


def test_one_audience_tag_per_operation(document: dict[str, Any]) -> None:
    audiences = {name for name, _ in TAGS}
    assert audiences == {"public", "me", "staff", "intake", "exchange", "admin"}
    assert [t["name"] for t in document["tags"]] == [name for name, _ in TAGS]
    tags = {(m, p): op["tags"] for p, m, op in _operations(document)}
    assert all(len(t) == 1 and t[0] in audiences for t in tags.values())
    assert tags[("get", "/api/v1/public/qr/{token}")] == ["public"]
    assert tags[("get", "/api/v1/me/notifications")] == ["me"]
    assert tags[("get", "/api/v1/cases")] == ["staff"]
    assert tags[("post", "/api/v1/intake/verifications")] == ["intake"]
    assert tags[("get", "/api/v1/feed/changes")] == ["exchange"]
    assert tags[("post", "/api/v1/accounts")] == ["admin"]


def test_title_and_package_name_are_valid_identifiers(document: dict[str, Any]) -> None:
    assert document["info"]["title"] == TITLE
    assert TITLE.isascii()
    assert re.fullmatch(r"[a-z][a-z_]*", document["info"]["x-package-name"])


def test_every_error_status_has_the_one_error_shape(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ErrorResponse" not in schemas
    assert set(schemas["ApiError"]["properties"]) == {"error"}
    for path, method, op in _operations(document):
        codes = op["x-error-codes"]
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "validation_error" in codes["422"], (method, path)
        if op.get("security"):
            assert {"not_authenticated", "invalid_token"} <= set(codes["401"]), (method, path)
        assert set(codes) <= set(op["responses"]), (method, path)


def test_error_codes_come_from_the_route_code(document: dict[str, Any]) -> None:
    codes = {(m, p): op["x-error-codes"] for p, m, op in _operations(document)}
    # Raised in the instrument service, two calls below the route: found and its status documented.
    assert codes[("post", "/api/v1/operators/{operator_id}/instruments")]["409"] == ["duplicate_serial"]
    # A rate limit inside the endpoint documents 429.
    assert "rate_limited" in codes[("post", "/api/v1/auth/activate")]["429"]
    assert codes[("get", "/api/v1/public/qr/{token}")]["410"] == ["revoked_qr"]
    assert "idempotency_conflict" in codes[("post", "/api/v1/complaints")]["409"]


def test_a_new_route_gets_the_contract_without_doing_anything() -> None:
    """Routes written later (by anyone) get ids, a tag, their errors and codes from the app alone."""
    router = APIRouter(prefix="/api/v1")

    def _refuse() -> None:
        raise conflict("gadget_taken", "已占用", "taken")

    @router.post("/gadgets/{gadget_id}/polish", responses=error_responses(404, codes={404: ["no_gadget"]}))
    def polish(gadget_id: int) -> dict[str, int]:
        if gadget_id > 1:
            raise AppError(422, "too_shiny", "太亮", "too shiny")
        _refuse()
        return {"id": gadget_id}

    app = FastAPI(generate_unique_id_function=operation_id)
    install_error_handlers(app)
    app.include_router(router)
    document = build_document(app)
    op = document["paths"]["/api/v1/gadgets/{gadget_id}/polish"]["post"]
    assert op["operationId"] == "gadgets_polish"
    assert op["tags"] == ["staff"]
    assert op["x-error-codes"]["409"] == ["gadget_taken"]
    assert "too_shiny" in op["x-error-codes"]["422"]
    assert op["x-error-codes"]["404"] == ["no_gadget", "not_found"]
    assert op["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
    install_contract(app)
    assert TestClient(app).get("/openapi.json").json()["paths"] == document["paths"]


def test_component_names_are_unique_and_plain(document: dict[str, Any]) -> None:
    names = list(document["components"]["schemas"])
    assert [n for n in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", n)] == []
    assert {"ComplaintsRoutingCandidate", "JurisdictionsRoutingCandidate"} <= set(names)
    refs = re.findall(r'"#/components/schemas/([^"]+)"', str(document).replace("'", '"'))
    assert set(refs) <= set(names)


def test_every_request_body_has_one_media_type_and_is_required(document: dict[str, Any]) -> None:
    # Generators type one body per operation: typescript-fetch imports a model it never writes for a second
    # media type, openapi-python-client writes ``A | B | Unset`` without importing ``Unset``.
    bodies = {(m, p): op["requestBody"] for p, m, op in _operations(document) if "requestBody" in op}
    assert {key: list(body["content"]) for key, body in bodies.items() if len(body["content"]) != 1} == {}
    app = document["paths"]["/api/v1/complaints"]["post"]["requestBody"]
    assert app["required"] is True and list(app["content"]) == ["application/json"]
    form = document["paths"]["/api/v1/complaint-form"]["post"]["requestBody"]
    assert form["required"] is True and list(form["content"]) == ["multipart/form-data"]


def test_complaint_part_is_a_named_schema(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/complaint-form"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]
    assert body["schema"]["properties"]["complaint"] == {"$ref": "#/components/schemas/ComplaintSubmission"}
    assert body["encoding"]["complaint"]["contentType"] == "application/json"
    schemas = document["components"]["schemas"]
    submission = schemas["ComplaintSubmission"]["properties"]
    assert {"$ref": "#/components/schemas/LocationIn"} in submission["location"]["anyOf"]
    assert {"$ref": "#/components/schemas/WeighingIn"} in submission["weighing"]["anyOf"]


def test_photo_downloads_are_binary(document: dict[str, Any]) -> None:
    binary = {"type": "string", "format": "binary"}
    rendition = document["paths"]["/api/v1/complaints/{complaint_id}/photos/{photo_id}/{rendition}"]["get"]
    assert rendition["responses"]["200"]["content"] == {"image/jpeg": {"schema": binary}}
    original = document["paths"]["/api/v1/staff/complaints/{complaint_id}/photos/{photo_id}/original"]["get"]
    content = original["responses"]["200"]["content"]
    assert {"image/jpeg", "image/png", "image/webp"} <= set(content)
    assert all(media["schema"] == binary for media in content.values())


def test_polled_reads_take_if_none_match_and_document_304(document: dict[str, Any]) -> None:
    polled = {
        ("get", "/api/v1/me/notifications"),
        ("get", "/api/v1/me/complaints"),
        ("get", "/api/v1/complaints/{complaint_id}"),
        ("get", "/api/v1/public/qr/{token}"),  # tagged by the body-hash middleware, not the route
        ("get", "/api/v1/public/operators/{operator_id}"),
        ("get", "/api/v1/app/config"),
        ("get", "/api/v1/me"),
    }
    found = {
        (method, path)
        for path, method, op in _operations(document)
        if any(p["name"] == "If-None-Match" and p["in"] == "header" for p in op.get("parameters", []))
    }
    assert found == polled
    for method, path in polled:
        responses = document["paths"][path][method]["responses"]
        assert "content" not in responses["304"] and "ETag" in responses["304"]["headers"]
        assert "ETag" in responses["200"]["headers"]


def test_every_api_call_but_the_app_config_documents_426(document: dict[str, Any]) -> None:
    for path, _method, op in _operations(document):
        expected = path.startswith("/api/") and path != "/api/v1/app/config"
        assert ("426" in op["responses"]) == expected, path
        if expected:
            assert op["responses"]["426"]["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
            assert "app_version_unsupported" in op["x-error-codes"]["426"]


def test_the_app_calls_are_tagged_for_their_audience(document: dict[str, Any]) -> None:
    assert document["paths"]["/api/v1/uploads"]["post"]["tags"] == ["me"]
    assert document["paths"]["/api/v1/app/config"]["get"]["tags"] == ["public"]
