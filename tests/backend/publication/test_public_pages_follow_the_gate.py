"""The public profile, the QR page and the public search show a 失信 class only while the gate allows (Art. 18, 19)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.qr import service as qr_service
from tests.backend.publication.conftest import (
    Bureau,
    individual_business,
    make_untrustworthy,
    publish,
    record_by,
)
from tests.factories import COUNTY_A, make_stall

Headers = dict[str, dict[str, str]]


def _shown(client: TestClient, bureau: Bureau, token: str) -> dict[str, Any]:
    """What each public surface says about the operator's class."""
    profile = client.get(f"/api/v1/public/operators/{bureau.operator.id}").json()["operator"]
    scanned = client.get(f"/api/v1/public/qr/{token}").json()["operator"]
    search = client.get(
        "/api/v1/public/operators", params={"q": bureau.operator.name, "jurisdiction_code": COUNTY_A}
    ).json()["items"][0]
    html = client.get(f"/q/{token}").text
    shown = html.split('id="integrity-class"', 1)[1].split("</div>", 1)[0]
    listed = client.get("/api/v1/public/untrustworthy").json()["total"]
    return {
        "profile": profile["integrity_class"],
        "scanned": scanned["integrity_class"],
        "search": search["integrity_class"],
        "page_untrustworthy": "失信" in shown,
        "listed": listed,
    }


HIDDEN = {"profile": None, "scanned": None, "search": None, "page_untrustworthy": False, "listed": 0}
SHOWN = {
    "profile": "untrustworthy",
    "scanned": "untrustworthy",
    "search": "untrustworthy",
    "page_untrustworthy": True,
    "listed": 1,
}


def test_class_appears_with_the_first_published_record_and_leaves_with_the_last(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    stall = make_stall(session, bureau.operator, holder_name="赵六")
    session.commit()
    token = qr_service.code_of(stall).token
    records = make_untrustworthy(session, bureau.operator, bureau.author)
    assert _shown(client, bureau, token) == HIDDEN
    # Pending and refused requests reveal nothing.
    client.post(f"/api/v1/records/{records[0].id}/publication/request", json={}, headers=headers["author"])
    assert _shown(client, bureau, token) == HIDDEN
    client.post(
        f"/api/v1/records/{records[0].id}/publication/refuse",
        json={"reason": "含个人信息"},
        headers=headers["reviewer"],
    )
    assert _shown(client, bureau, token) == HIDDEN
    publish(client, records[0].id or 0, headers["author"], headers["reviewer"])
    assert _shown(client, bureau, token) == SHOWN
    client.post(
        f"/api/v1/records/{records[0].id}/publication/unpublish",
        json={"reason": "撤下"},
        headers=headers["author"],
    )
    assert _shown(client, bureau, token) == HIDDEN
    publish(client, records[1].id or 0, headers["author"], headers["reviewer"])
    assert _shown(client, bureau, token) == SHOWN
    resp = client.post(
        f"/api/v1/records/{records[1].id}/correct",
        json={"summary": "更正", "reason": "更正摘要"},
        headers=headers["colleague"],
    )
    assert resp.status_code == 200
    assert _shown(client, bureau, token) == HIDDEN


def test_a_published_record_outside_the_class_reveals_nothing(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    stall = make_stall(session, bureau.operator)
    session.commit()
    token = qr_service.code_of(stall).token
    make_untrustworthy(session, bureau.operator, bureau.author)
    unrelated = record_by(session, bureau.operator, bureau.author, "short_weight")
    publish(client, unrelated.id or 0, headers["author"], headers["reviewer"])
    assert _shown(client, bureau, token) == HIDDEN


def test_public_profile_and_search_mask_an_individual_business_holder(
    client: TestClient, session: Session, bureau: Bureau
) -> None:
    shop = individual_business(session, bureau.author, holder="李小龙", name="李小龙水果摊")
    profile = client.get(f"/api/v1/public/operators/{shop.id}").json()["operator"]
    assert profile["name"] == "李**水果摊"
    found = client.get(
        "/api/v1/public/operators", params={"q": "水果摊", "jurisdiction_code": COUNTY_A}
    ).json()
    assert [item["name"] for item in found["items"] if item["id"] == shop.id] == ["李**水果摊"]
    by_person = client.get("/api/v1/public/operators", params={"q": "李小龙", "jurisdiction_code": COUNTY_A})
    assert [item for item in by_person.json()["items"] if item["id"] == shop.id] == []
    assert "李小龙" not in profile["name"] and "李小龙" not in by_person.text
