"""The change feed: what is shared (verified records, class changes, revocations), to whom (jurisdictions,
fields), in what order (cursor paging without gaps or repeats, late commits included), and the read log."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlmodel import Session, col, func, select

from backend.audit.models import AuditEntry
from backend.audit.service import SYSTEM, verify_chain
from backend.config import get_settings
from backend.db import table_of
from backend.exchange import service as exchange
from backend.exchange.models import FeedCaptureMark, FeedEntry, FeedReadLog, FeedSource
from backend.operators.models import Operator
from backend.records import rating
from backend.records import service as records
from backend.records.models import IntegrityRecord, RatingChange, RatingTrigger
from backend.records.rules import IntegrityClass
from tests.backend.exchange.conftest import IssueKey, World, feed, read_all
from tests.factories import CITY_A, COUNTY_B, make_record


def _mine(events: list[dict[str, Any]], *operators: Operator) -> list[dict[str, Any]]:
    ids = {o.id for o in operators}
    return [e for e in events if e["operator_id"] in ids]


def _record_events(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["type"], e["record"]["record_id"]) for e in events if "record" in e]


def _evidenced(session: Session, operator: Operator, source: str, ref: str) -> IntegrityRecord:
    record = records.create(
        session,
        operator=operator,
        kind="short_weight",
        fact_date=date.today() - timedelta(days=10),
        source=source,
        source_ref=ref,
        state="verified",
        summary="复秤短少 50 克",
        evidence_refs=["photo:1", "photo:2"],
        actor=SYSTEM,
    )
    session.commit()
    return record


def test_verified_records_are_shared_reported_and_dismissed_ones_are_not(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key()
    verified = make_record(session, world.operator)
    reported = make_record(session, world.operator, "short_weight", verified=False)
    dismissed = make_record(session, world.operator, "metrology_cheating", verified=False)
    records.dismiss(session, dismissed, actor=SYSTEM, reason="查无实据")
    session.commit()
    events, _ = read_all(client, key["api_key"])
    assert _record_events(_mine(events, world.operator)) == [("record_verified", verified.id)]

    records.verify(session, reported, actor=SYSTEM, reason="核实")
    session.commit()
    more, _ = read_all(client, key["api_key"], cursor=events[-1]["cursor"])
    assert _record_events(_mine(more, world.operator)) == [("record_verified", reported.id)]


def test_revoking_a_shared_record_is_an_event_and_a_never_shared_one_is_not(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key()
    shared = make_record(session, world.operator)
    unshared = make_record(session, world.operator, "short_weight", verified=False)
    session.commit()
    first, cursor = read_all(client, key["api_key"])
    assert _record_events(_mine(first, world.operator)) == [("record_verified", shared.id)]
    records.revoke(session, shared, actor=SYSTEM, reason="经复核撤销")
    records.revoke(session, unshared, actor=SYSTEM, reason="报告有误")
    session.commit()
    later, _ = read_all(client, key["api_key"], cursor=cursor)
    assert _record_events(_mine(later, world.operator)) == [("record_revoked", shared.id)]
    revoked = _mine(later, world.operator)[0]["record"]
    assert revoked["version"] == 2 and revoked["kind"] == "complaint_substantiated"


def test_a_correction_of_a_verified_record_is_shared_with_the_new_values(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key()
    record = make_record(session, world.operator, fact_date=date.today() - timedelta(days=40))
    session.commit()
    _, cursor = read_all(client, key["api_key"])
    new_date = date.today() - timedelta(days=20)
    records.correct(session, record, actor=SYSTEM, reason="日期有误", changes={"fact_date": new_date})
    session.commit()
    later, _ = read_all(client, key["api_key"], cursor=cursor)
    [event] = _mine(later, world.operator)
    assert event["type"] == "record_corrected" and event["record"]["fact_date"] == new_date.isoformat()


def test_class_changes_are_shared_with_reasons_only_when_scoped(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    with_reasons = issue_key()
    without_reasons = issue_key(fields=["class"])
    no_class = issue_key(fields=["record_kind"])
    make_record(session, world.operator, "inspection_failed")
    rating.rerate_operator(session, world.operator.id or 0)
    session.commit()

    [full] = [
        e
        for e in _mine(read_all(client, with_reasons["api_key"])[0], world.operator)
        if e["type"] == "class_change"
    ]
    assert full["class_change"]["from_class"] == IntegrityClass.BASICALLY_TRUSTWORTHY.value
    assert full["class_change"]["to_class"] == IntegrityClass.UNTRUSTWORTHY.value
    assert full["class_change"]["trigger"] == "record"
    assert full["class_change"]["reasons"][0]["article"]
    assert full["operator"]["uscc"] == world.operator.uscc

    bare = _mine(read_all(client, without_reasons["api_key"])[0], world.operator)
    assert [e["type"] for e in bare] == ["class_change"]
    assert "reasons" not in bare[0]["class_change"] and "operator" not in bare[0]
    assert bare[0]["class_change"]["to_class"] == IntegrityClass.UNTRUSTWORTHY.value
    assert [e["type"] for e in _mine(read_all(client, no_class["api_key"])[0], world.operator)] == [
        "record_verified"
    ]


def test_a_key_sees_only_its_jurisdictions_and_their_descendants(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    county = issue_key()
    other_county = issue_key(jurisdiction_codes=[COUNTY_B])
    city = issue_key(jurisdiction_codes=[CITY_A])
    mine = make_record(session, world.operator)
    theirs = make_record(session, world.other_operator)
    session.commit()
    both = (world.operator, world.other_operator)
    assert _record_events(_mine(read_all(client, county["api_key"])[0], *both)) == [
        ("record_verified", mine.id)
    ]
    assert _record_events(_mine(read_all(client, other_county["api_key"])[0], *both)) == [
        ("record_verified", theirs.id)
    ]
    assert sorted(_record_events(_mine(read_all(client, city["api_key"])[0], *both))) == sorted(
        [("record_verified", mine.id), ("record_verified", theirs.id)]
    )


def test_fields_outside_the_scope_are_absent(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    narrow = issue_key(fields=["record_kind"])
    wide = issue_key()
    _evidenced(session, world.operator, "staff", "西市监罚〔2026〕12号")
    [event] = _mine(read_all(client, narrow["api_key"])[0], world.operator)
    assert set(event) == {"cursor", "type", "occurred_at", "operator_id", "jurisdiction_code", "record"}
    assert set(event["record"]) == {
        "record_id",
        "version",
        "kind",
        "kind_label_zh",
        "kind_label_en",
        "bad",
        "source",
    }
    assert event["jurisdiction_code"] == world.operator.jurisdiction_code

    [full] = _mine(read_all(client, wide["api_key"])[0], world.operator)
    assert full["operator"] == {
        "uscc": world.operator.uscc,
        "name": world.operator.name,
        "sector": world.operator.sector.value,
        "address": world.operator.address,
        "legal_representative": world.operator.legal_representative,
    }
    assert full["record"]["summary"] == "复秤短少 50 克"
    assert full["record"]["evidence_refs"] == ["photo:1", "photo:2"]
    assert full["record"]["document_ref"] == "西市监罚〔2026〕12号"
    assert full["record"]["instrument_still_in_use"] is None and "fact_date" in full["record"]


def test_references_to_a_complaint_or_a_supervisor_are_never_shared(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key()
    _evidenced(session, world.operator, "complaint", "complaint:4711")
    _evidenced(session, world.operator, "supervisor", "supervisor:12:abc")
    events = _mine(read_all(client, key["api_key"])[0], world.operator)
    assert len(events) == 2
    for event in events:
        assert "document_ref" not in event["record"]
        assert "4711" not in str(event) and "supervisor:12" not in str(event)


def test_paging_has_no_gaps_or_repeats_even_with_rows_added_between_pages(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key(jurisdiction_codes=[CITY_A])
    expected = [make_record(session, world.operator, "short_weight").id for _ in range(5)]
    session.commit()
    seen: list[int] = []
    cursor: str | None = None
    added = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = feed(client, key["api_key"], **params).json()
        assert len(body["events"]) <= 2
        seen += [
            e["record"]["record_id"] for e in _mine(body["events"], world.operator, world.other_operator)
        ]
        if added < 3:
            # Rows written while the department is paging arrive on a later page.
            operator = world.operator if added % 2 else world.other_operator
            expected.append(make_record(session, operator, "metrology_cheating").id)
            session.commit()
            added += 1
        cursor = body["next_cursor"]
        if not body["has_more"] and added == 3:
            final = feed(client, key["api_key"], cursor=cursor, limit=2).json()
            seen += [
                e["record"]["record_id"] for e in _mine(final["events"], world.operator, world.other_operator)
            ]
            if not final["events"]:
                break
            cursor = final["next_cursor"]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    # Event cursors resume right after their event.
    all_events, _ = read_all(client, key["api_key"])
    mine = _mine(all_events, world.operator, world.other_operator)
    resumed, _ = read_all(client, key["api_key"], cursor=mine[2]["cursor"])
    assert [e["record"]["record_id"] for e in _mine(resumed, world.operator, world.other_operator)] == [
        e["record"]["record_id"] for e in mine[3:]
    ]


def test_an_empty_page_moves_the_cursor_past_rows_outside_the_scope(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key()
    _, start = read_all(client, key["api_key"])
    make_record(session, world.other_operator)
    session.commit()
    body = feed(client, key["api_key"], cursor=start).json()
    assert body["events"] == [] and body["has_more"] is False
    assert exchange.decode_cursor(body["next_cursor"]) > exchange.decode_cursor(start)


def test_a_row_committed_after_a_higher_id_was_read_is_not_lost(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key(fields=["class"])
    history = table_of(RatingChange)
    top = session.exec(select(func.max(col(RatingChange.id)))).one() or 0
    row = {
        "operator_id": world.operator.id,
        "from_cls": IntegrityClass.BASICALLY_TRUSTWORTHY,
        "to_cls": IntegrityClass.UNTRUSTWORTHY,
        "as_of": date.today(),
        "reasons": [],
        "rules_version": "test",
        "trigger": RatingTrigger.record,
        "at": datetime.now(UTC),
    }
    # Two writers took ids top+10 and top+5; the one with the higher id commits first and is read.
    session.execute(insert(history).values(id=top + 10, **row))
    session.commit()
    first, cursor = read_all(client, key["api_key"])
    assert [e["occurred_at"] for e in _mine(first, world.operator)]
    session.execute(
        insert(history).values(
            id=top + 5,
            **(row | {"from_cls": IntegrityClass.UNTRUSTWORTHY, "to_cls": IntegrityClass.TRUSTWORTHY}),
        )
    )
    session.commit()
    later, _ = read_all(client, key["api_key"], cursor=cursor)
    assert [e["class_change"]["to_class"] for e in _mine(later, world.operator)] == ["trustworthy"]


def test_the_capture_mark_moves_only_past_rows_old_enough_to_be_final(session: Session, world: World) -> None:
    old = make_record(session, world.operator)
    recent = make_record(session, world.operator, "short_weight")
    versions = records.versions(session, old.id or 0)
    versions[0].at = datetime.now(UTC) - exchange.SETTLE_AFTER - timedelta(minutes=5)
    session.add(versions[0])
    session.flush()
    exchange.capture(session)
    mark = session.get(FeedCaptureMark, FeedSource.record_version)
    assert mark is not None and mark.settled_through == versions[0].id
    recent_version = records.versions(session, recent.id or 0)[0]
    assert mark.settled_through < (recent_version.id or 0)
    captured = session.exec(
        select(FeedEntry.source_id).where(col(FeedEntry.source) == FeedSource.record_version)
    ).all()
    assert {versions[0].id, recent_version.id} <= set(captured)
    # A second capture copies nothing twice.
    exchange.capture(session)
    again = session.exec(
        select(FeedEntry.source_id).where(col(FeedEntry.source) == FeedSource.record_version)
    ).all()
    assert sorted(again) == sorted(captured)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "not a cursor",
        "a",
        _cursor("gpc1:-1"),
        _cursor("gpc1:01"),
        _cursor("gpc2:5"),
        _cursor("gpc1:99999999999999999"),
        _cursor("gpc1:5\n"),
        "%00",
        "\u6c34",
    ],
)
def test_malformed_cursors_are_422(
    client: TestClient, session: Session, issue_key: IssueKey, cursor: str
) -> None:
    key = issue_key()
    resp = feed(client, key["api_key"], cursor=cursor)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_cursor"
    assert session.exec(select(func.count()).select_from(FeedReadLog)).one() == 0


@pytest.mark.parametrize("params", [{"cursor": "A" * 201}, {"limit": 0}, {"limit": 501}, {"limit": "many"}])
def test_bad_paging_parameters_are_422(
    client: TestClient, issue_key: IssueKey, params: dict[str, Any]
) -> None:
    key = issue_key()
    resp = feed(client, key["api_key"], **params)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"


def test_every_read_is_logged_and_staff_see_the_log_of_their_keys(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    key = client.post(
        "/api/v1/exchange/keys",
        json={
            "name": "发改对接",
            "department": "西湖区发展和改革局",
            "jurisdiction_codes": [world.operator.jurisdiction_code],
            "fields": ["record_kind"],
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
        headers=staff_headers,
    ).json()
    make_record(session, world.operator)
    make_record(session, world.operator, "short_weight")
    session.commit()
    first = feed(client, key["api_key"], limit=1).json()
    second = feed(client, key["api_key"], cursor=first["next_cursor"], limit=50).json()
    assert feed(client, key["api_key"], cursor="!!!").status_code == 422
    logs = session.exec(
        select(FeedReadLog).where(col(FeedReadLog.api_key_id) == key["id"]).order_by(col(FeedReadLog.id))
    ).all()
    assert [(log.cursor_from, log.rows, log.has_more) for log in logs] == [
        (0, 1, True),
        (exchange.decode_cursor(first["next_cursor"]), len(second["events"]), False),
    ]
    assert logs[1].cursor_to == exchange.decode_cursor(second["next_cursor"])
    assert logs[0].department == "西湖区发展和改革局" and logs[0].client_ip == "testclient"

    listed = client.get(f"/api/v1/exchange/read-log?api_key_id={key['id']}", headers=staff_headers).json()
    assert listed["total"] == 2 and [i["id"] for i in listed["items"]] == [logs[1].id, logs[0].id]
    assert client.get("/api/v1/exchange/read-log", headers=admin_headers).json()["total"] >= 2
    theirs = client.get("/api/v1/exchange/read-log", headers=other_staff_headers).json()
    assert key["id"] not in {i["api_key_id"] for i in theirs["items"]}


def test_the_feed_is_rate_limited_per_key(
    client: TestClient, issue_key: IssueKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "exchange_feed_rate_per_key", "2/minute")
    one, two = issue_key(), issue_key()
    assert [feed(client, one["api_key"]).status_code for _ in range(3)] == [200, 200, 429]
    assert feed(client, two["api_key"]).status_code == 200
    limited = feed(client, one["api_key"])
    assert limited.json()["error"]["code"] == "rate_limited" and limited.headers["Retry-After"]


def test_every_feed_read_enters_the_audit_chain(
    client: TestClient, session: Session, world: World, issue_key: IssueKey
) -> None:
    key = issue_key()
    make_record(session, world.operator)
    session.commit()
    body = feed(client, key["api_key"], limit=100).json()
    assert body["events"]
    [entry] = session.exec(select(AuditEntry).where(col(AuditEntry.action) == "feed.read")).all()
    [logged] = session.exec(select(FeedReadLog)).all()
    assert (entry.entity_type, entry.entity_id, entry.actor_id, entry.actor_role) == (
        "exchange_key",
        str(key["id"]),
        None,
        "department",
    )
    assert entry.after is not None and entry.after["department"] == key["department"]
    assert entry.after["read_log_id"] == logged.id and entry.after["rows"] == len(body["events"])
    assert world.operator.id in entry.after["operator_ids"]
    # In the same hash chain as every change and staff read: it verifies end to end.
    checked, problems = verify_chain(session)
    assert checked > 0 and problems == []
    # A refused call (bad cursor) reads nothing and logs nothing.
    assert feed(client, key["api_key"], cursor="!!").status_code == 422
    assert len(session.exec(select(AuditEntry).where(col(AuditEntry.action) == "feed.read")).all()) == 1


def test_the_read_log_keeps_the_client_behind_a_trusted_proxy(
    client: TestClient, session: Session, issue_key: IssueKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress

    monkeypatch.setattr(get_settings(), "trusted_proxies", (ipaddress.ip_network("10.0.0.0/8"),))
    key = issue_key()
    headers = {"X-Api-Key": key["api_key"], "X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
    for peer in ("10.0.0.2", "192.0.2.9"):
        from_peer = TestClient(client.app, raise_server_exceptions=False, client=(peer, 50000))
        assert from_peer.get("/api/v1/feed/changes", headers=headers).status_code == 200
    logs = session.exec(
        select(FeedReadLog).where(col(FeedReadLog.api_key_id) == key["id"]).order_by(col(FeedReadLog.id))
    ).all()
    assert [log.client_ip for log in logs] == ["203.0.113.5", "192.0.2.9"]
