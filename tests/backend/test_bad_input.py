"""Bad input a generated client (or a hostile one) may send: dates as numbers, a complaint part not in UTF-8."""

from __future__ import annotations

import json
import typing
from datetime import date, timedelta

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.complaints.models import Complaint
from backend.main import create_app
from tests.factories import COUNTY_A, complaint_json, login, make_account, make_operator


def _request_models() -> set[type[BaseModel]]:
    """Every model a route reads from a request body, nested ones included."""
    found: set[type[BaseModel]] = set()

    def visit(annotation: object) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in found:
            found.add(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for argument in typing.get_args(annotation):
            visit(argument)

    for context in iter_route_contexts(create_app().routes):
        if isinstance(context.original_route, APIRoute):
            for param in context.dependant.body_params:
                visit(param.field_info.annotation)
    return found


def _is_date(annotation: object) -> bool:
    return annotation is date or any(_is_date(a) for a in typing.get_args(annotation))


def test_every_date_in_a_request_body_is_a_yyyy_mm_dd_string() -> None:
    """A number (Pydantic reads 0 as 1970-01-01) or a datetime string is refused wherever a day is read."""
    checked = 0
    for model in _request_models():
        for name, field in model.model_fields.items():
            if not _is_date(field.annotation):
                continue
            checked += 1
            for bad in (0, "0", 1_700_000_000, "2026-01-01T00:00:00", "20260101"):
                with pytest.raises(ValidationError) as info:
                    model.__pydantic_validator__.validate_assignment(model.model_construct(), name, bad)
                assert info.value.errors()[0]["type"] == "date_format", (model.__name__, name, bad)
    assert checked >= 15


def test_a_number_as_fact_date_is_refused(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff)
    body = {"operator_id": market.id, "kind": "short_weight", "summary": "复称缺 50 克", "fact_date": 0}
    resp = client.post("/api/v1/records", json=body, headers=login(client, staff))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"
    assert resp.json()["error"]["details"][0]["loc"] == ["body", "fact_date"]
    body["fact_date"] = (date.today() - timedelta(days=3)).isoformat()
    assert client.post("/api/v1/records", json=body, headers=login(client, staff)).status_code == 201


@pytest.mark.parametrize("encoding", ["gb18030", "latin-1"])
def test_a_complaint_part_not_in_utf8_is_invalid_json(
    client: TestClient, session: Session, encoding: str
) -> None:
    headers = login(client, make_account(session, Role.consumer_device))
    part = json.dumps(complaint_json(description="称了两斤苹果，少了二两 — ¥12"), ensure_ascii=False)
    resp = client.post(
        "/api/v1/complaint-form",
        files={"complaint": (None, part.encode(encoding, "replace"), "application/json")},
        headers={**headers, "Idempotency-Key": f"not-utf8-{encoding}"},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_json"
    assert session.exec(select(Complaint).where(col(Complaint.description).contains("苹果"))).first() is None
    utf8 = client.post(
        "/api/v1/complaint-form",
        files={"complaint": (None, part.encode("utf-8"), "application/json")},
        headers={**headers, "Idempotency-Key": f"utf8-{encoding}"},
    )
    assert utf8.status_code == 201, utf8.text
