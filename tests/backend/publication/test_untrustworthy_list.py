"""The published untrustworthy list (Art. 19): who is on it, filters, paging, masking, downloads, no leaks."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, update
from sqlmodel import Session

from backend.db import table_of, utcnow
from backend.operators.models import Sector
from backend.publication import listing
from backend.records.models import OperatorRating, RatingChange, RatingTrigger
from backend.records.rules import IntegrityClass, RecordKind
from backend.records.service import bureau_today
from tests.backend.publication.conftest import (
    Bureau,
    individual_business,
    make_untrustworthy,
    publish,
    record_by,
)
from tests.factories import CITY_A, COUNTY_A, COUNTY_B, OTHER_PROVINCE_COUNTY, make_operator

Headers = dict[str, dict[str, str]]
URL = "/api/v1/public/untrustworthy"


def _listed(client: TestClient, **params: Any) -> dict[str, Any]:
    resp = client.get(URL, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _names(client: TestClient, **params: Any) -> list[str]:
    return [item["name"] for item in _listed(client, **params)["items"]]


def test_listed_only_once_a_record_behind_the_class_is_published(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    records = make_untrustworthy(session, bureau.operator, bureau.author)
    assert _listed(client)["total"] == 0
    # A published record that is not behind the class (a good record) names nobody.
    good = record_by(session, bureau.operator, bureau.author, RecordKind.COMMITMENT_KEPT)
    publish(client, good.id or 0, headers["author"], headers["reviewer"])
    assert _listed(client)["total"] == 0
    publish(client, records[1].id or 0, headers["author"], headers["reviewer"])
    body = _listed(client)
    assert body["total"] == 1 and body["limit"] == 50 and body["offset"] == 0
    [entry] = body["items"]
    operator = bureau.operator
    assert entry["operator_id"] == operator.id and entry["name"] == "西溪水产批发部"
    assert (
        entry["uscc"] == operator.uscc and entry["sector"] == "market" and entry["sector_name"] == "集贸市场"
    )
    assert entry["jurisdiction_code"] == COUNTY_A and entry["jurisdiction_name"] == "西湖区"
    assert entry["untrustworthy_since"] == bureau_today().isoformat()
    # Only the published record, with its kind, date and article; nothing else about it.
    assert entry["records"] == [
        {
            "kind": "complaint_substantiated",
            "kind_name": "消费者投诉举报经查实",
            "fact_date": records[1].fact_date.isoformat(),
            "article": "13(4)",
            "article_name": "第十三条第（四）项",
        }
    ]
    english = client.get(URL, headers={"Accept-Language": "en"}).json()["items"][0]
    assert (
        english["sector_name"] == "Farmers' market" and english["records"][0]["article_name"] == "Art. 13(4)"
    )
    assert english["records"][0]["kind_name"] == "consumer complaint substantiated"


def test_nothing_private_is_listed(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    operator = individual_business(session, bureau.author, holder="王小明", name="王小明鲜肉店")
    records = make_untrustworthy(session, operator, bureau.author)
    publish(client, records[0].id or 0, headers["author"], headers["reviewer"])
    for raw in (
        client.get(URL).text,
        client.get(URL, params={"format": "csv"}).text,
        client.get(f"{URL}.json").text,
    ):
        assert "王小明" not in raw and "13800138000" not in raw and "13912345678" not in raw
        assert "李四" not in raw and "投诉人" not in raw and "文三路" not in raw
        assert "summary" not in raw and "evidence" not in raw and "legal_representative" not in raw
        assert "王**鲜肉店" in raw


def test_holder_names_of_individual_businesses_are_masked(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    shop = individual_business(session, bureau.author, holder="张三丰", name="张三丰水果摊")
    bare = individual_business(session, bureau.author, holder="欧阳娜娜", name="欧阳娜娜")
    company = make_operator(session, bureau.author, name="张三丰贸易有限公司")
    for operator in (shop, bare, company):
        records = make_untrustworthy(session, operator, bureau.author)
        publish(client, records[0].id or 0, headers["author"], headers["reviewer"])
    assert sorted(_names(client)) == sorted(["张**水果摊", "欧**", "张三丰贸易有限公司"])
    # The search sees the masked name only: a person's name finds no individual business.
    assert _names(client, q="张三丰") == ["张三丰贸易有限公司"]
    assert _names(client, q="欧阳娜娜") == []
    assert _names(client, q="水果") == ["张**水果摊"]
    assert _names(client, q=shop.uscc) == ["张**水果摊"]


def _listed_operator(
    session: Session, client: TestClient, bureau: Bureau, headers: Headers, **kwargs: Any
) -> int:
    operator = make_operator(session, bureau.admin, **kwargs)
    records = make_untrustworthy(session, operator, bureau.author)
    publish(client, records[0].id or 0, headers["admin"], headers["second_admin"])
    return operator.id or 0


def test_filters(client: TestClient, session: Session, bureau: Bureau, headers: Headers) -> None:
    west = _listed_operator(session, client, bureau, headers, name="西湖加油站", sector=Sector.fuel_station)
    upper = _listed_operator(
        session, client, bureau, headers, name="上城眼镜店", county=COUNTY_B, sector=Sector.optical
    )
    beijing = _listed_operator(
        session, client, bureau, headers, name="朝阳超市", county=OTHER_PROVINCE_COUNTY, sector=Sector.retail
    )

    def ids(**params: Any) -> set[int]:
        return {item["operator_id"] for item in _listed(client, **params)["items"]}

    assert ids() == {west, upper, beijing}
    assert ids(jurisdiction_code=COUNTY_A) == {west}
    assert ids(jurisdiction_code=CITY_A) == {west, upper}
    assert ids(jurisdiction_code="330000") == {west, upper}
    assert ids(jurisdiction_code="110000") == {beijing}
    assert ids(sector="optical") == {upper}
    assert ids(sector="optical", jurisdiction_code=COUNTY_A) == set()
    assert ids(q="加油") == {west}
    assert ids(q="%") == set() and ids(q="_") == set()
    today = bureau_today()
    assert ids(since_from=today.isoformat(), since_to=today.isoformat()) == {west, upper, beijing}
    assert ids(since_to=(today - timedelta(days=1)).isoformat()) == set()
    assert ids(since_from=(today + timedelta(days=1)).isoformat()) == set()
    for params, code in (
        ({"jurisdiction_code": "999999"}, "invalid_jurisdiction_code"),
        ({"jurisdiction_code": "33"}, "validation_error"),
        ({"jurisdiction_code": "3301'; --"}, "validation_error"),
        ({"sector": "casino"}, "validation_error"),
        ({"since_from": "2026-02-30"}, "validation_error"),
        (
            {"since_from": today.isoformat(), "since_to": (today - timedelta(days=1)).isoformat()},
            "invalid_date_range",
        ),
        ({"q": "x" * 101}, "validation_error"),
        ({"format": "xlsx"}, "validation_error"),
    ):
        resp = client.get(URL, params=params)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.json()["error"]["code"] == code
        if "format" not in params:
            assert client.get(f"{URL}.json", params=params).status_code == 422


def _store_rating(session: Session, operator_id: int, record_ids: list[int], as_of: date) -> None:
    """A stored 失信 class as the rating engine writes it, naming ``record_ids`` under Art. 13(4)."""
    reasons = [{"rule": "art13_4_complaints_substantiated", "article": "13(4)", "record_ids": record_ids}]
    session.execute(
        insert(table_of(OperatorRating)).values(
            operator_id=operator_id,
            cls=IntegrityClass.UNTRUSTWORTHY,
            as_of=as_of,
            reasons=reasons,
            rules_version="test",
            signature="test",
            revision=1,
            updated_at=utcnow(),
        )
    )


def _class_change(session: Session, operator_id: int, to_cls: IntegrityClass, as_of: date) -> None:
    session.execute(
        insert(table_of(RatingChange)).values(
            operator_id=operator_id,
            from_cls=IntegrityClass.BASICALLY_TRUSTWORTHY,
            to_cls=to_cls,
            as_of=as_of,
            reasons=[],
            rules_version="test",
            trigger=RatingTrigger.record,
            at=utcnow(),
        )
    )


def test_since_is_when_the_current_untrustworthy_class_began(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    records = [record_by(session, bureau.operator, bureau.author, days_ago=100 + i) for i in range(3)]
    today = bureau_today()
    _store_rating(session, bureau.operator.id or 0, [r.id or 0 for r in records], today)
    session.commit()
    publish(client, records[0].id or 0, headers["author"], headers["reviewer"])
    # Without a class history the stored rating's date stands.
    assert _listed(client)["items"][0]["untrustworthy_since"] == today.isoformat()
    earlier, later = today - timedelta(days=400), today - timedelta(days=20)
    _class_change(session, bureau.operator.id or 0, IntegrityClass.UNTRUSTWORTHY, earlier)
    _class_change(
        session, bureau.operator.id or 0, IntegrityClass.BASICALLY_TRUSTWORTHY, earlier + timedelta(days=30)
    )
    _class_change(session, bureau.operator.id or 0, IntegrityClass.UNTRUSTWORTHY, later)
    session.commit()
    assert _listed(client)["items"][0]["untrustworthy_since"] == later.isoformat()
    assert _listed(client, since_from=later.isoformat(), since_to=later.isoformat())["total"] == 1
    assert _listed(client, since_to=(later - timedelta(days=1)).isoformat())["total"] == 0
    # Reasons that name no published record (or no record at all) list nobody.
    session.execute(
        update(table_of(OperatorRating))
        .where(table_of(OperatorRating).c.operator_id == bureau.operator.id)
        .values(
            reasons=[
                {"rule": "art13_4_complaints_substantiated", "record_ids": [records[1].id]},
                {"rule": "gap"},
            ]
        )
    )
    session.commit()
    assert _listed(client)["total"] == 0


def test_paging(client: TestClient, session: Session, bureau: Bureau, headers: Headers) -> None:
    made = [_listed_operator(session, client, bureau, headers, name=f"分页测试{i}") for i in range(3)]
    first = _listed(client, limit=2)
    assert first["total"] == 3 and len(first["items"]) == 2
    second = _listed(client, limit=2, offset=2)
    seen = [i["operator_id"] for i in first["items"] + second["items"]]
    assert sorted(seen) == sorted(made) and len(set(seen)) == 3
    # Listed the same day: the newest operator first, a stable order.
    assert seen == sorted(made, reverse=True)
    beyond = _listed(client, offset=listing.MAX_OFFSET)
    assert beyond["items"] == [] and beyond["total"] == 3
    for params in (
        {"offset": listing.MAX_OFFSET + 1},
        {"offset": 10**30},
        {"offset": -1},
        {"limit": 0},
        {"limit": 201},
        {"limit": "abc"},
    ):
        resp = client.get(URL, params=params)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.json()["error"]["code"] == "validation_error"


def test_script_in_the_search_term_is_just_text(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    hostile = "<script>alert(1)</script>"
    _listed_operator(session, client, bureau, headers, name=f"{hostile}商店")
    resp = client.get(URL, params={"q": hostile})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["items"][0]["name"] == f"{hostile}商店"
    for q in ("' OR 1=1 --", "\\", "😀", "商店'; DROP TABLE operator; --"):
        other = client.get(URL, params={"q": q})
        assert other.status_code == 200 and other.json()["total"] == 0, (q, other.text)
    for q in ("\u0000", "商\u0000", "a\nb", "\x7f"):
        for url, extra in ((URL, {}), (URL, {"format": "csv"}), (f"{URL}.json", {})):
            refused = client.get(url, params={"q": q, **extra})
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_search_term"
    download = client.get(URL, params={"q": "script", "format": "csv"})
    assert download.headers["content-type"].startswith("text/csv") and hostile in download.text


def _csv(resp: Any) -> list[list[str]]:
    assert resp.status_code == 200, resp.text
    assert resp.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))


def test_csv_download(client: TestClient, session: Session, bureau: Bureau, headers: Headers) -> None:
    records = make_untrustworthy(session, bureau.operator, bureau.author)
    publish(client, records[0].id or 0, headers["author"], headers["reviewer"])
    publish(client, records[2].id or 0, headers["author"], headers["reviewer"])
    tricky = _listed_operator(session, client, bureau, headers, name='=HYPERLINK("http://x"),"逗号",\n换行')
    resp = client.get(URL, params={"format": "csv"})
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in resp.headers["content-disposition"]
    assert "filename*=UTF-8''%E5%A4%B1%E4%BF%A1" in resp.headers["content-disposition"]
    rows = _csv(resp)
    assert rows[0] == [
        "经营者名称",
        "统一社会信用代码",
        "行业",
        "行政区划代码",
        "所属辖区",
        "列入失信日期",
        "公开的不良记录",
    ]
    assert len(rows) == 3
    by_uscc = {row[1]: row for row in rows[1:]}
    mine = by_uscc[bureau.operator.uscc]
    assert mine[:6] == [
        "西溪水产批发部",
        bureau.operator.uscc,
        "集贸市场",
        COUNTY_A,
        "西湖区",
        bureau_today().isoformat(),
    ]
    newest, oldest = sorted([records[0], records[2]], key=lambda r: r.fact_date, reverse=True)
    assert mine[6] == (
        f"{newest.fact_date.isoformat()} 消费者投诉举报经查实（第十三条第（四）项）；"
        f"{oldest.fact_date.isoformat()} 消费者投诉举报经查实（第十三条第（四）项）"
    )
    # Quotes, commas and newlines survive; a formula is defused for spreadsheets.
    [formula] = [row for row in rows[1:] if row[0].startswith("'=")]
    assert formula[0] == '\'=HYPERLINK("http://x"),"逗号",\n换行'
    assert tricky
    paged = client.get(URL, params={"format": "json", "limit": 1, "offset": 1})
    assert paged.json()["total"] == 2 and len(paged.json()["items"]) == 1
    # The download is the whole filtered list, whatever page the caller was on.
    assert _csv(client.get(URL, params={"format": "csv", "limit": 1, "offset": 1})) == rows
    refused = client.get(URL, params={"format": "csv", "jurisdiction_code": "999999"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_jurisdiction_code"
    english = _csv(client.get(URL, params={"format": "csv"}, headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert english[0] == [
        "Operator name",
        "Unified social credit code",
        "Sector",
        "Jurisdiction code",
        "Jurisdiction",
        "Untrustworthy since",
        "Published bad records",
    ]
    assert "consumer complaint substantiated (Art. 13(4))" in "".join(english[1] + english[2])
    filtered = _csv(client.get(URL, params={"q": "水产", "format": "csv"}))
    assert [row[0] for row in filtered[1:]] == ["西溪水产批发部"]
    empty = _csv(client.get(URL, params={"jurisdiction_code": OTHER_PROVINCE_COUNTY, "format": "csv"}))
    assert len(empty) == 1


def test_json_download(client: TestClient, session: Session, bureau: Bureau, headers: Headers) -> None:
    assert client.get(f"{URL}.json").json() == []
    made = [_listed_operator(session, client, bureau, headers, name=f"下载{i}") for i in range(3)]
    resp = client.get(f"{URL}.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = json.loads(resp.content)
    assert [e["operator_id"] for e in body] == sorted(made, reverse=True)
    assert body[0]["records"][0]["article"] == "13(4)"
    assert client.get(f"{URL}.json", params={"since_from": "not-a-date"}).status_code == 422


def test_downloads_stream_in_batches(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [_listed_operator(session, client, bureau, headers, name=f"批量{i}") for i in range(5)]
    monkeypatch.setattr(listing, "STREAM_BATCH", 2)
    stmt = listing.build_query(session, listing.ListFilter())
    batches = list(listing.iter_entries(session, stmt, "zh-CN"))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(len(e.records) == 1 for b in batches for e in b)
    rows = _csv(client.get(URL, params={"format": "csv", "lang": "zh-CN"}))
    assert len(rows) == 6 and {row[1] for row in rows[1:]} == {e.uscc for b in batches for e in b}
    assert len(json.loads(client.get(f"{URL}.json").content)) == len(made)


def test_leaves_the_list_when_withdrawn_or_the_class_changes(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    from backend.records import rating

    records = make_untrustworthy(session, bureau.operator, bureau.author)
    publish(client, records[0].id or 0, headers["author"], headers["reviewer"])
    publish(client, records[1].id or 0, headers["author"], headers["reviewer"])
    assert _listed(client)["total"] == 1
    resp = client.post(
        f"/api/v1/records/{records[0].id}/publication/unpublish",
        json={"reason": "依法撤下"},
        headers=headers["author"],
    )
    assert resp.status_code == 200
    assert [r["fact_date"] for r in _listed(client)["items"][0]["records"]] == [
        records[1].fact_date.isoformat()
    ]
    # Revoking the other published record: before the re-rating runs the stored class still names it, but
    # nothing behind it is public any more; afterwards the class itself is gone.
    resp = client.post(
        f"/api/v1/records/{records[1].id}/revoke", json={"reason": "撤销"}, headers=headers["colleague"]
    )
    assert resp.status_code == 200
    assert _listed(client)["total"] == 0
    rating.rerate_operator(session, bureau.operator.id or 0)
    session.commit()
    assert _listed(client)["total"] == 0


@pytest.mark.parametrize("value", ["0", "1700000000", "2026-1-2", "yesterday"])
def test_listing_dates_must_be_written_as_days(client: TestClient, value: str) -> None:
    # A lax parser would read "0" as 1970-01-01 and quietly filter on it.
    for url in (URL, f"{URL}.json"):
        resp = client.get(url, params={"since_to": value})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["code"]
    assert client.get(URL, params={"since_to": "2026-01-02"}).status_code == 200
