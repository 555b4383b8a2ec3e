"""The GB/T 2260 tree in the database and its API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from backend.jurisdictions.models import DivisionLevel, Jurisdiction
from backend.jurisdictions.service import sync_divisions


def test_tree_is_loaded_with_paths(session: Session) -> None:
    counts = dict(session.exec(select(Jurisdiction.level, func.count()).group_by(Jurisdiction.level)).all())
    assert counts[DivisionLevel.province] >= 31
    assert counts[DivisionLevel.county] > 2800
    xihu = session.get(Jurisdiction, "330106")
    assert xihu is not None and xihu.path == "/330000/330100/330106/"
    assert xihu.bureau_name == "西湖区市场监督管理局"


def test_descendant_query_is_a_prefix_scan(session: Session) -> None:
    hangzhou = session.get(Jurisdiction, "330100")
    assert hangzhou is not None
    below = session.exec(
        select(Jurisdiction.code).where(col(Jurisdiction.path).startswith(hangzhou.path))
    ).all()
    assert "330106" in below and "330102" in below and "110105" not in below


def test_sync_is_idempotent(session: Session) -> None:
    assert sync_divisions(session) == 0


def test_api_children_and_detail(client: TestClient) -> None:
    provinces = client.get("/api/v1/jurisdictions").json()
    assert any(p["code"] == "330000" for p in provinces)
    detail = client.get("/api/v1/jurisdictions/330106").json()
    assert [a["code"] for a in detail["ancestors"]] == ["330000", "330100"]
    assert client.get("/api/v1/jurisdictions/999999").status_code == 404
