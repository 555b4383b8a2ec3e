"""Institutions' violation reports (Art. 15(1)) and associations' warnings and censures (Art. 16), single and CSV."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import func, select

from backend.auth.models import Role
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind, RecordState
from backend.records.service import bureau_today
from tests.backend.intake.conftest import World
from tests.factories import make_account, make_instrument, make_operator

TODAY = bureau_today()
VIOLATIONS = "/api/v1/intake/violations"
ASSOCIATION = "/api/v1/intake/association-reports"


def _record(world: World, record_id: int) -> IntegrityRecord:
    record = world.session.get(IntegrityRecord, record_id)
    assert record is not None
    return record


def test_an_institution_reports_a_cheating_device_pending_verification(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    body: dict[str, Any] = {
        "kind": "metrology_cheating",
        "serial": scale.serial,
        "operator_uscc": world.operator.uscc,
        "fact_date": (TODAY - timedelta(days=2)).isoformat(),
        "summary": "检定时发现秤内加装遥控作弊装置",
        "evidence_refs": ["photo:abc"],
        "reference": "浙计检〔2026〕12号",
    }
    headers = world.headers(world.institution)
    resp = world.client.post(VIOLATIONS, json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    report = resp.json()
    record = _record(world, report["record_id"])
    assert record.kind is RecordKind.METROLOGY_CHEATING and record.state is RecordState.REPORTED
    assert record.source is RecordSource.institution and record.instrument_id == scale.id
    assert record.operator_id == world.operator.id and record.author_id == world.institution.id
    assert "遥控作弊装置" in record.summary and record.evidence_refs == ["浙计检〔2026〕12号", "photo:abc"]
    again = world.client.post(VIOLATIONS, json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == report["id"]
    assert world.client.get(f"/api/v1/intake/reports/{report['id']}", headers=headers).status_code == 200
    other = make_account(world.session, Role.institution)
    assert (
        world.client.get(f"/api/v1/intake/reports/{report['id']}", headers=world.headers(other)).status_code
        == 404
    )


def test_an_institution_csv_of_violations_is_filed_row_by_row(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    day = (TODAY - timedelta(days=2)).isoformat()
    content = (
        "违法情形,统一社会信用代码,出厂编号,发现日期,情况说明,证据材料,文书编号\n"
        f"计量作弊,{world.operator.uscc},{scale.serial},{day},秤内加装遥控作弊装置,photo:a;photo:b,浙计检〔2026〕12号\n"
        f"short_weight,{world.other_operator.uscc},,{day},复称短少 50 克,,\n"
        f"监督检查不合格,{world.operator.uscc},,{day},x,,\n"
        f"缺斤短两,,,{day},未指明对象,,\n"
        f"缺斤短两,911111111111111111,,{day},x,,\n"
        f"缺斤短两,{world.operator.uscc},,2026-02-30,x,,\n"
    ).encode("gb18030")
    job = world.upload("violations/import", world.institution, content).json()
    assert job["kind"] == "violation_reports" and job["progress"]["total"] == 6
    world.run(job["id"])
    job = world.job(job["id"], world.institution)
    assert (job["imported"], job["rejected"], job["records_created"]) == (2, 4, 2)
    errors = world.client.get(job["errors_url"], headers=world.headers(world.institution)).json()["items"]
    assert [(e["row"], e["column"], e["code"]) for e in errors] == [
        (4, "kind", "invalid_violation_kind"),
        (5, None, "missing_operator_or_instrument"),
        (6, "operator_uscc", "unknown_operator"),
        (7, "fact_date", "invalid_date"),
    ]
    assert errors[0]["message_zh"].startswith("违法情形“监督检查不合格”")
    reports = world.client.get("/api/v1/intake/reports", headers=world.headers(world.institution)).json()
    by_row = {r["row_number"]: r for r in reports["items"]}
    assert sorted(by_row) == [2, 3]
    cheating = _record(world, by_row[2]["record_id"])
    assert cheating.kind is RecordKind.METROLOGY_CHEATING and cheating.state is RecordState.REPORTED
    assert cheating.instrument_id == scale.id and cheating.source is RecordSource.institution
    assert (
        by_row[2]["evidence_refs"] == ["photo:a", "photo:b"]
        and by_row[2]["reference"] == "浙计检〔2026〕12号"
    )
    short = _record(world, by_row[3]["record_id"])
    assert short.kind is RecordKind.SHORT_WEIGHT and short.operator_id == world.other_operator.id
    # The same file again files nothing new.
    again = world.upload("violations/import", world.institution, content).json()
    world.run(again["id"])
    assert world.job(again["id"], world.institution)["duplicates"] == 2
    # A file that names neither operators nor instruments is refused at upload, and only institutions upload.
    nameless = f"违法情形,发现日期,情况说明\n缺斤短两,{day},x\n".encode()
    refused = world.upload("violations/import", world.institution, nameless)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "missing_columns"
    assert world.upload("violations/import", world.association, content).status_code == 403


def test_institutions_cannot_report_the_bureaus_own_findings(world: World) -> None:
    body = {
        "kind": "inspection_failed",
        "operator_id": world.operator.id,
        "fact_date": TODAY.isoformat(),
        "summary": "x",
    }
    resp = world.client.post(VIOLATIONS, json=body, headers=world.headers(world.institution))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "kind_not_reportable"
    future = body | {"kind": "short_weight", "fact_date": (TODAY + timedelta(days=1)).isoformat()}
    resp = world.client.post(VIOLATIONS, json=future, headers=world.headers(world.institution))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "fact_date_in_future"
    assert (
        world.client.post(VIOLATIONS, json=body, headers=world.headers(world.association)).status_code == 403
    )


def test_an_association_reports_a_warning_and_a_censure(world: World) -> None:
    world.enrol(world.operator)
    headers = world.headers(world.association)
    base = {
        "operator_uscc": world.operator.uscc,
        "fact_date": (TODAY - timedelta(days=10)).isoformat(),
        "summary": "会员缺斤短两，经协会调查属实",
        "evidence_refs": ["协会决定书 2026-3"],
    }
    warning = world.client.post(ASSOCIATION, json=base | {"measure": "warning"}, headers=headers)
    censure = world.client.post(ASSOCIATION, json=base | {"measure": "censure"}, headers=headers)
    assert warning.status_code == 201 and censure.status_code == 201, censure.text
    records = [_record(world, r.json()["record_id"]) for r in (warning, censure)]
    assert all(
        r.kind is RecordKind.ASSOCIATION_WARNING
        and r.source is RecordSource.association
        and r.state is RecordState.REPORTED
        for r in records
    )
    assert records[0].summary.startswith("【行业组织警告】") and records[1].summary.startswith(
        "【行业内通报批评】"
    )
    assert warning.json()["measure"] == "warning" and censure.json()["measure"] == "censure"
    listed = world.client.get("/api/v1/intake/reports", headers=headers).json()
    assert listed["total"] == 2
    violation = world.client.post(ASSOCIATION, json=base | {"measure": "violation"}, headers=headers)
    assert violation.status_code == 422


def test_associations_reach_only_their_own_area(world: World) -> None:
    beijing_staff = make_account(world.session, Role.staff, "110105")
    far = make_operator(world.session, beijing_staff, county="110105")
    body = {"measure": "warning", "operator_id": far.id, "fact_date": TODAY.isoformat(), "summary": "x"}
    resp = world.client.post(ASSOCIATION, json=body, headers=world.headers(world.association))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_operator"
    for account in (world.institution, world.staff):
        assert world.client.post(ASSOCIATION, json=body, headers=world.headers(account)).status_code == 403


def test_an_association_csv_is_filed_row_by_row(world: World) -> None:
    world.enrol(world.operator)
    world.enrol(world.other_operator)
    stranger = make_operator(world.session, world.staff)  # in the area, not a member
    day = (TODAY - timedelta(days=3)).isoformat()
    before_joining = (TODAY - timedelta(days=400)).isoformat()
    content = (
        "统一社会信用代码,措施,日期,事由,证据,文号\n"
        f"{world.operator.uscc},警告,{day},短秤,照片1;照片2,协〔2026〕1号\n"
        f"{world.other_operator.uscc},通报批评,{day},拒不整改,,协〔2026〕2号\n"
        f"{world.other_operator.uscc},罚款,{day},x,,\n"
        f"911111111111111111,警告,{day},x,,\n"
        f"{stranger.uscc},警告,{day},非会员,,\n"
        f"{world.operator.uscc},警告,{before_joining},入会前,,\n"
        f"{world.operator.uscc},警告,{day},含\x00空字符,,\n"
    ).encode("gb18030")
    job = world.upload("association-reports/import", world.association, content).json()
    assert job["kind"] == "association_reports" and job["progress"]["total"] == 7
    world.run(job["id"])
    job = world.job(job["id"], world.association)
    assert (job["imported"], job["rejected"], job["records_created"]) == (2, 5, 2)
    errors = world.client.get(job["errors_url"], headers=world.headers(world.association)).json()["items"]
    assert [(e["row"], e["column"], e["code"]) for e in errors] == [
        (4, "measure", "invalid_measure"),
        (5, "operator_uscc", "unknown_operator"),
        (6, "operator_uscc", "not_a_member"),
        (7, "operator_uscc", "not_a_member"),
        (8, "summary", "control_character"),
    ]
    assert errors[3]["message_zh"].startswith("该经营者在 " + before_joining)
    assert (
        world.session.exec(
            select(func.count())
            .select_from(IntegrityRecord)
            .where(IntegrityRecord.operator_id == stranger.id)
        ).one()
        == 0
    )
    reports = world.client.get("/api/v1/intake/reports", headers=world.headers(world.association)).json()
    assert sorted(r["row_number"] for r in reports["items"]) == [2, 3]
    by_row = {r["row_number"]: r for r in reports["items"]}
    assert by_row[2]["evidence_refs"] == ["照片1", "照片2"] and by_row[2]["reference"] == "协〔2026〕1号"
    assert by_row[3]["measure"] == "censure" and by_row[3]["evidence_refs"] == []
    again = world.upload("association-reports/import", world.association, content).json()
    world.run(again["id"])
    assert world.job(again["id"], world.association)["duplicates"] == 2
    assert world.upload("association-reports/import", world.institution, content).status_code == 403
