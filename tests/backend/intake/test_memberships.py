"""Associations' membership registers (Art. 16): adding, ending, listing, CSV import, staff's read, and the
refusal of warnings and censures about operators that were not members on the fact date."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, func, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.intake import memberships
from backend.intake.models import AssociationMembership
from backend.operators.models import Operator
from backend.records.models import IntegrityRecord
from backend.records.service import bureau_today
from tests.backend.intake.conftest import World
from tests.factories import CITY_A, COUNTY_B, make_account, make_operator, next_uscc

TODAY = bureau_today()
MEMBERS = "/api/v1/intake/association-memberships"
REPORTS = "/api/v1/intake/association-reports"
HEADER = "统一社会信用代码,会员编号,入会日期,退会日期,退会原因\n"


def _add(world: World, uscc: str, joined_on: Any = None, **extra: Any) -> Any:
    body = {
        "operator_uscc": uscc,
        "joined_on": (joined_on or TODAY - timedelta(days=30)).isoformat(),
        **extra,
    }
    return world.client.post(MEMBERS, json=body, headers=world.headers(world.association))


def _end(world: World, membership_id: int, ended_on: Any, reason: str = "退会") -> Any:
    return world.client.post(
        f"{MEMBERS}/{membership_id}/end",
        json={"ended_on": ended_on.isoformat(), "reason": reason},
        headers=world.headers(world.association),
    )


def _report(world: World, operator: Operator, fact_date: Any, account: Any = None, **extra: Any) -> Any:
    body = {
        "measure": "warning",
        "operator_id": operator.id,
        "fact_date": fact_date.isoformat(),
        "summary": "会员短秤",
        **extra,
    }
    return world.client.post(REPORTS, json=body, headers=world.headers(account or world.association))


def _actions(world: World) -> list[str]:
    return list(
        world.session.exec(
            select(AuditEntry.action)
            .where(col(AuditEntry.action).startswith("association_membership."))
            .order_by(col(AuditEntry.seq))
        ).all()
    )


def test_an_association_registers_lists_and_reads_its_members(world: World) -> None:
    headers = world.headers(world.association)
    resp = _add(world, world.operator.uscc.lower(), member_number="HZ-001")
    assert resp.status_code == 201, resp.text
    member = resp.json()
    assert member["operator_id"] == world.operator.id and member["operator_uscc"] == world.operator.uscc
    assert member["operator_name"] == world.operator.name and member["member_number"] == "HZ-001"
    assert member["current"] is True and member["ended_on"] is None
    stored = world.session.get(AssociationMembership, member["id"])
    assert stored is not None and stored.created_by == world.association.id
    assert stored.association_id == world.association.id
    other = _add(world, world.other_operator.uscc).json()
    assert world.client.get(f"{MEMBERS}/{member['id']}", headers=headers).json() == member
    listed = world.client.get(MEMBERS, headers=headers).json()
    assert listed["total"] == 2 and [m["id"] for m in listed["items"]] == [other["id"], member["id"]]
    paged = world.client.get(MEMBERS, params={"limit": 1, "offset": 1}, headers=headers).json()
    assert paged["total"] == 2 and [m["id"] for m in paged["items"]] == [member["id"]]
    by_name = world.client.get(MEMBERS, params={"q": world.operator.name}, headers=headers).json()
    assert [m["id"] for m in by_name["items"]] == [member["id"]]
    by_code = world.client.get(
        MEMBERS, params={"q": world.other_operator.uscc[:16].lower()}, headers=headers
    ).json()
    assert other["id"] in [m["id"] for m in by_code["items"]]
    for limit in (0, 201):
        resp = world.client.get(MEMBERS, params={"limit": limit}, headers=headers)
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"
    assert world.client.get(MEMBERS, params={"status": "gone"}, headers=headers).status_code == 422
    assert _actions(world) == ["association_membership.create"] * 2


def test_registering_is_refused_with_reasons(world: World) -> None:
    beijing_staff = make_account(world.session, Role.staff, "110105")
    far = make_operator(world.session, beijing_staff, county="110105")
    closed = make_operator(world.session, world.staff)
    closed.is_active = False
    world.session.add(closed)
    world.session.flush()
    cases = [
        (_add(world, next_uscc()), 404, "unknown_operator"),  # a valid code nobody registered
        (_add(world, far.uscc), 404, "unknown_operator"),  # outside the association's city
        (_add(world, "12345"), 422, "invalid_uscc"),
        (_add(world, closed.uscc), 422, "operator_inactive"),
        (_add(world, world.operator.uscc, TODAY + timedelta(days=1)), 422, "joined_on_in_future"),
        (_add(world, world.operator.uscc, member_number=""), 422, "validation_error"),
    ]
    for resp, status, code in cases:
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text
    first = _add(world, world.operator.uscc).json()
    again = _add(world, world.operator.uscc, TODAY - timedelta(days=3))
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"
    assert again.json()["error"]["details"]["membership_id"] == first["id"]
    english = world.client.post(
        MEMBERS,
        json={"operator_uscc": world.operator.uscc, "joined_on": TODAY.isoformat()},
        headers=world.headers(world.association) | {"Accept-Language": "en"},
    )
    assert english.json()["error"]["message"] == "the operator is already your current member"
    for account in (world.institution, world.staff):
        resp = world.client.post(
            MEMBERS,
            json={"operator_uscc": world.operator.uscc, "joined_on": TODAY.isoformat()},
            headers=world.headers(account),
        )
        assert resp.status_code == 403
    count = world.session.exec(select(func.count()).select_from(AssociationMembership)).one()
    assert count == 1


def test_ending_a_membership_and_joining_again(world: World) -> None:
    joined = TODAY - timedelta(days=100)
    member = _add(world, world.operator.uscc, joined).json()
    for ended_on, status, code in (
        (joined - timedelta(days=1), 422, "ended_before_joined"),
        (TODAY + timedelta(days=1), 422, "ended_on_in_future"),
    ):
        resp = _end(world, member["id"], ended_on)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text
    no_reason = world.client.post(
        f"{MEMBERS}/{member['id']}/end",
        json={"ended_on": TODAY.isoformat(), "reason": "  "},
        headers=world.headers(world.association),
    )
    assert no_reason.status_code == 422
    ended_on = TODAY - timedelta(days=50)
    resp = _end(world, member["id"], ended_on, "拒不整改，予以除名")
    assert resp.status_code == 200, resp.text
    assert resp.json()["ended_on"] == ended_on.isoformat() and resp.json()["current"] is False
    assert resp.json()["end_reason"] == "拒不整改，予以除名"
    twice = _end(world, member["id"], ended_on)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "membership_ended"
    # A new period may start only after the last day of the earlier one.
    overlap = _add(world, world.operator.uscc, ended_on)
    assert overlap.status_code == 409 and overlap.json()["error"]["code"] == "membership_overlap"
    rejoined = _add(world, world.operator.uscc, ended_on + timedelta(days=1))
    assert rejoined.status_code == 201, rejoined.text
    headers = world.headers(world.association)
    current = world.client.get(MEMBERS, params={"status": "current"}, headers=headers).json()
    ended = world.client.get(MEMBERS, params={"status": "ended"}, headers=headers).json()
    assert [m["id"] for m in current["items"]] == [rejoined.json()["id"]]
    assert [m["id"] for m in ended["items"]] == [member["id"]]
    entry = world.session.exec(
        select(AuditEntry).where(AuditEntry.action == "association_membership.end")
    ).one()
    assert entry.before is not None and entry.before["ended_on"] is None
    assert entry.after is not None and entry.after["ended_on"] == ended_on.isoformat()
    # Another association neither sees nor ends it.
    rival = make_account(world.session, Role.association, CITY_A)
    for method, path, body in (
        ("GET", f"{MEMBERS}/{rejoined.json()['id']}", None),
        ("POST", f"{MEMBERS}/{rejoined.json()['id']}/end", {"ended_on": TODAY.isoformat(), "reason": "x"}),
    ):
        resp = world.client.request(method, path, json=body, headers=world.headers(rival))
        assert resp.status_code == 404, resp.text
    assert world.client.get(MEMBERS, headers=world.headers(rival)).json()["total"] == 0


def test_reports_are_accepted_only_about_members_on_the_fact_date(world: World) -> None:
    joined = TODAY - timedelta(days=100)
    stranger = _report(world, world.operator, TODAY - timedelta(days=1))
    assert stranger.status_code == 422, stranger.text
    error = stranger.json()["error"]
    assert error["code"] == "not_a_member" and error["details"]["operator_id"] == world.operator.id
    assert error["message"].startswith("该经营者在 ")
    english = world.client.post(
        REPORTS,
        json={
            "measure": "censure",
            "operator_uscc": world.operator.uscc,
            "fact_date": TODAY.isoformat(),
            "summary": "x",
        },
        headers=world.headers(world.association) | {"Accept-Language": "en"},
    )
    assert english.status_code == 422
    assert english.json()["error"]["message"].startswith("the operator was not your member on ")
    member = world.enrol(world.operator, joined_on=joined)
    # Another association's membership does not let this one report, nor the reverse.
    rival = make_account(world.session, Role.association, CITY_A)
    assert _report(world, world.operator, TODAY, rival).json()["error"]["code"] == "not_a_member"
    assert _report(world, world.operator, joined - timedelta(days=1)).status_code == 422
    on_joining = _report(world, world.operator, joined, summary="入会当日")
    assert on_joining.status_code == 201, on_joining.text
    last_day = TODAY - timedelta(days=10)
    on_last_day = _report(world, world.operator, last_day, summary="除名当日通报")
    assert on_last_day.status_code == 201
    # The membership cannot end before a report filed about it; on that day it can (the last day counts).
    early = _end(world, member.id or 0, last_day - timedelta(days=1))
    assert early.status_code == 409 and early.json()["error"]["code"] == "reports_after_end"
    assert early.json()["error"]["details"] == {"latest_fact_date": last_day.isoformat()}
    assert _end(world, member.id or 0, last_day).status_code == 200
    after = _report(world, world.operator, last_day + timedelta(days=1), summary="退会后")
    assert after.status_code == 422 and after.json()["error"]["code"] == "not_a_member"
    records = world.session.exec(
        select(func.count())
        .select_from(IntegrityRecord)
        .where(IntegrityRecord.operator_id == world.operator.id)
    ).one()
    assert records == 2
    # Institutions' violation reports need no membership.
    violation = world.client.post(
        "/api/v1/intake/violations",
        json={
            "kind": "short_weight",
            "operator_id": world.other_operator.id,
            "fact_date": TODAY.isoformat(),
            "summary": "抽检短秤",
        },
        headers=world.headers(world.institution),
    )
    assert violation.status_code == 201, violation.text


def test_a_register_imports_from_csv_row_by_row(world: World) -> None:
    third = make_operator(world.session, world.staff)
    closed = make_operator(world.session, world.staff)
    closed.is_active = False
    world.session.add(closed)
    beijing_staff = make_account(world.session, Role.staff, "110105")
    far = make_operator(world.session, beijing_staff, county="110105")
    world.enrol(world.other_operator, joined_on=TODAY - timedelta(days=20))
    joined = (TODAY - timedelta(days=300)).isoformat()
    left = (TODAY - timedelta(days=100)).isoformat()
    later = (TODAY - timedelta(days=50)).isoformat()
    lines = [
        HEADER,
        f"{world.operator.uscc},HZ-1,{joined},,\n",  # 2: added, current
        f"{third.uscc},HZ-2,{joined},{left},退出协会\n",  # 3: added, ended
        f"{third.uscc},HZ-2,{later},,\n",  # 4: added, a second period after the first
        f"{third.uscc},,{left},{later},重复\n",  # 5: overlaps row 3's period
        f"{world.other_operator.uscc},,{joined},,\n",  # 6: already a current member
        f"{closed.uscc},,{joined},,\n",  # 7: inactive
        f"{far.uscc},,{joined},,\n",  # 8: outside the area
        "91330106MA2XXXXXX0,,2020-01-01,,\n",  # 9: bad code
        f"{next_uscc()},,2020-13-01,,\n",  # 10: bad date
        f"{next_uscc()},,,,\n",  # 11: no joining date
        f"{next_uscc()},,{left},{joined},x\n",  # 12: ends before joining
        f"{next_uscc()},,{joined},{left},\n",  # 13: an end without a reason
        f"{next_uscc()},,{(TODAY + timedelta(days=2)).isoformat()},,\n",  # 14: joins in the future
        "\n",  # blank: skipped, still numbered
        f"{world.operator.uscc.lower()},HZ-1,{joined},,\n",  # 16: the same as row 2
    ]
    content = "".join(lines).encode("gb18030")
    resp = world.upload("association-memberships/import", world.association, content, "会员.csv")
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["encoding"] == "gb18030" and report["total"] == 14
    assert (report["imported"], report["duplicates"], report["rejected"]) == (3, 1, 10)
    assert [(e["row"], e["column"], e["code"]) for e in report["errors"]] == [
        (5, "joined_on", "membership_overlap"),
        (6, "operator_uscc", "already_member"),
        (7, "operator_uscc", "operator_inactive"),
        (8, "operator_uscc", "unknown_operator"),
        (9, "operator_uscc", "invalid_uscc"),
        (10, "joined_on", "invalid_date"),
        (11, "joined_on", "missing_value"),
        (12, "ended_on", "ended_before_joined"),
        (13, "end_reason", "missing_value"),
        (14, "joined_on", "joined_on_in_future"),
    ]
    assert report["errors"][0]["message"] == report["errors"][0]["message_zh"]
    rows = world.session.exec(
        select(AssociationMembership)
        .where(AssociationMembership.association_id == world.association.id)
        .order_by(col(AssociationMembership.id))
    ).all()
    assert [(m.operator_id, m.ended_on is None) for m in rows] == [
        (world.other_operator.id, True),
        (world.operator.id, True),
        (third.id, False),
        (third.id, True),
    ]
    assert rows[2].end_reason == "退出协会" and rows[2].member_number == "HZ-2"
    actions = _actions(world)
    assert actions.count("association_membership.create") == 4
    summary = world.session.exec(
        select(AuditEntry).where(AuditEntry.action == "association_membership.import")
    ).one()
    assert (
        summary.after is not None
        and summary.after["imported"] == 3
        and summary.after["filename"] == "会员.csv"
    )
    # A report dated inside the ended period is about a member then; the same file again adds nothing.
    assert _report(world, third, TODAY - timedelta(days=150)).status_code == 201
    assert _report(world, third, TODAY - timedelta(days=75)).status_code == 422
    again = world.upload("association-memberships/import", world.association, content).json()
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 4, 10)
    english = world.client.post(
        f"{MEMBERS}/import",
        files={"file": ("m.csv", content, "text/csv")},
        headers=world.headers(world.association) | {"Accept-Language": "en"},
    ).json()
    assert english["errors"][0]["message"] == english["errors"][0]["message_en"]


def test_english_headers_with_a_bom_and_upload_checks(world: World) -> None:
    joined = (TODAY - timedelta(days=10)).isoformat()
    bom = ("\ufeffuscc,joined_on,member_number\n" + f"{world.operator.uscc},{joined},A-1\n").encode("utf-8")
    report = world.upload("association-memberships/import", world.association, bom).json()
    assert report["encoding"] == "utf-8-sig" and report["imported"] == 1 and report["errors"] == []
    too_many = "uscc,joined_on\n" + f"{world.operator.uscc},{joined}\n" * (memberships.MAX_ROWS + 1)
    cases = [
        (b"", 422, "empty_csv"),
        (b"uscc,joined_on\n", 422, "empty_csv"),
        (b"uscc,member_number\nX,1\n", 422, "missing_columns"),
        (b"\xff\xfe\xff\xfe,\x81\n", 415, "unsupported_encoding"),
        (b'uscc,joined_on\n"' + b"x" * 200_000 + b'",2020-01-01\n', 422, "malformed_csv"),
        (too_many.encode(), 413, "too_many_rows"),
    ]
    for content, status, code in cases:
        resp = world.upload("association-memberships/import", world.association, content)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text
    for account in (world.institution, world.staff):
        assert world.upload("association-memberships/import", account, bom).status_code == 403
    count = world.session.exec(select(func.count()).select_from(AssociationMembership)).one()
    assert count == 1


def test_staff_read_an_operators_memberships_in_their_scope(world: World) -> None:
    world.association.organisation = "杭州市农贸市场行业协会"
    world.session.add(world.association)
    member = world.enrol(world.operator)
    rival = make_account(world.session, Role.association)
    world.enrol(world.operator, account=rival, joined_on=TODAY - timedelta(days=5))
    path = f"/api/v1/operators/{world.operator.id}/association-memberships"
    resp = world.client.get(path, headers=world.headers(world.staff))
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert page["total"] == 2 and page["items"][1]["id"] == member.id
    assert page["items"][1]["association_name"] == "杭州市农贸市场行业协会"
    assert page["items"][1]["association_id"] == world.association.id and page["items"][1]["current"] is True
    one = world.client.get(path, params={"limit": 1}, headers=world.headers(world.staff)).json()
    assert one["total"] == 2 and len(one["items"]) == 1
    reads = world.session.exec(
        select(AuditEntry)
        .where(AuditEntry.action == "association_membership.read")
        .order_by(col(AuditEntry.seq))
    ).all()
    assert len(reads) == 2 and reads[0].actor_id == world.staff.id
    assert reads[0].entity_id == str(world.operator.id)
    assert reads[0].after == {"membership_ids": [m["id"] for m in page["items"]]}
    neighbour = make_account(world.session, Role.staff, COUNTY_B)
    assert world.client.get(path, headers=world.headers(neighbour)).status_code == 404
    city = make_account(world.session, Role.staff, CITY_A)
    assert world.client.get(path, headers=world.headers(city)).json()["total"] == 2
    for account in (world.association, world.institution):
        assert world.client.get(path, headers=world.headers(account)).status_code == 403
    missing = world.client.get(
        "/api/v1/operators/999999999/association-memberships", headers=world.headers(world.staff)
    )
    assert missing.status_code == 404


def test_an_operator_sees_which_associations_register_it(world: World) -> None:
    world.association.organisation = "杭州市农贸市场行业协会"
    world.session.add(world.association)
    member = world.enrol(world.operator)
    memberships.end(
        world.session,
        account=world.association,
        membership_id=member.id or 0,
        ended_on=TODAY - timedelta(days=10),
        reason="未按期缴纳会费",
    )
    rival = make_account(world.session, Role.association)
    world.enrol(world.operator, account=rival, joined_on=TODAY - timedelta(days=5))
    world.enrol(world.other_operator)
    user = make_account(world.session, Role.operator, operator_id=world.operator.id)
    resp = world.client.get("/api/v1/me/association-memberships", headers=world.headers(user))
    assert resp.status_code == 200, resp.text
    page = resp.json()
    # Its own two memberships (not the other operator's), the latest joined first.
    assert page["total"] == 2
    latest, ended = page["items"]
    assert latest["current"] is True and latest["joined_on"] == (TODAY - timedelta(days=5)).isoformat()
    assert ended["association_name"] == "杭州市农贸市场行业协会" and ended["current"] is False
    assert (ended["ended_on"], ended["end_reason"]) == (
        (TODAY - timedelta(days=10)).isoformat(),
        "未按期缴纳会费",
    )
    # Nothing about the association's account beyond its name.
    assert "association_id" not in ended
    assert world.client.get(
        "/api/v1/me/association-memberships", params={"offset": 1}, headers=world.headers(user)
    ).json()["items"] == [ended]
    for account in (world.association, world.staff):
        resp = world.client.get("/api/v1/me/association-memberships", headers=world.headers(account))
        assert resp.status_code == 403


def test_hostile_input_is_refused_without_a_server_error(world: World) -> None:
    headers = world.headers(world.association)
    member = _add(world, world.operator.uscc).json()
    joined = (TODAY - timedelta(days=3)).isoformat()
    nul = f"uscc,joined_on,member_number\n{world.other_operator.uscc},{joined},A\x00\x01\n".encode()
    report = world.upload("association-memberships/import", world.association, nul).json()
    assert [(e["column"], e["code"]) for e in report["errors"]] == [("member_number", "control_character")]
    calls = [
        ("GET", f"{MEMBERS}/{2**70}", None, None),
        ("GET", f"{MEMBERS}/-1", None, None),
        ("POST", f"{MEMBERS}/{2**63}/end", {"ended_on": TODAY.isoformat(), "reason": "x"}, None),
        ("POST", f"{MEMBERS}/{member['id']}/end", {"ended_on": "0000-01-01", "reason": "x"}, None),
        ("POST", f"{MEMBERS}/{member['id']}/end", {"ended_on": TODAY.isoformat(), "reason": "x" * 501}, None),
        ("POST", MEMBERS, {"operator_uscc": world.other_operator.uscc, "joined_on": "1-1-1"}, None),
        ("POST", MEMBERS, {"operator_uscc": ["x"], "joined_on": joined}, None),
        ("POST", MEMBERS, {"operator_uscc": world.other_operator.uscc, "joined_on": joined, "x": 1}, None),
        ("GET", MEMBERS, None, {"q": "%_\\'\x00"}),
        ("GET", MEMBERS, None, {"q": "x" * 101}),
        ("GET", MEMBERS, None, {"offset": 10**7}),
    ]
    for method, path, body, params in calls:
        resp = world.client.request(method, path, json=body, params=params, headers=headers)
        where = f"{method} {path} {body} {params}: {resp.status_code} {resp.text}"
        # A NUL in the search finds nothing on SQLite and is refused (422) by PostgreSQL.
        assert resp.status_code in (200, 404, 422) if params else resp.status_code in (404, 422), where
        assert resp.status_code == 200 or "error" in resp.json(), where
    assert world.client.get(MEMBERS, params={"q": "%"}, headers=headers).json()["total"] == 0
    staff = world.headers(world.staff)
    huge = world.client.get(f"/api/v1/operators/{2**70}/association-memberships", headers=staff)
    assert huge.status_code in (404, 422)
