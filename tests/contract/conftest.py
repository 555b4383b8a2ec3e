"""A committed world for the contract tests: one account per role, and objects of every kind in county A.

The fuzzer and the authorization matrix call the real app (its own sessions, real commits), so the world is
committed once per module and everything the module committed is deleted afterwards (as ``committed_session``
does per test), leaving the database as it was for the rest of the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend import ratelimit
from backend.audit.service import SYSTEM
from backend.auth.models import Role
from backend.cases.models import Case
from backend.complaints.models import ComplaintPhoto
from backend.config import get_settings
from backend.main import create_app
from backend.notices.models import InboxNotification
from backend.open311 import service as open311_service
from backend.outbox.models import OutboxEvent
from backend.qr import service as qr_service
from tests.conftest import _delete_new_rows, _table_keys
from tests.factories import (
    CITY_A,
    COUNTY_A,
    COUNTY_B,
    complaint_json,
    login,
    make_account,
    make_device,
    make_instrument,
    make_operator,
    make_record,
    make_stall,
    post_complaint,
)
from tests.fixtures.media_images import jpeg, photo_like
from workers import cases_tasks

#: The callers of the authorization matrix (and the identities the fuzzer signs in as).
ROLES = (
    "anonymous",
    "consumer_device",
    "supervisor",
    "operator",
    "staff_a",
    "staff_b",
    "staff_city",
    "auditor",
    "institution",
    "association",
    "department",
    "admin",
)


@dataclass
class ContractWorld:
    """Tokens by role and the ids of objects in county A (西湖区) that the tests call routes with."""

    app: FastAPI
    client: TestClient
    headers: dict[str, dict[str, str]]
    ids: dict[str, int | str] = field(default_factory=dict)


#: How long the world's access tokens last (the product's default is 15 minutes).
WORLD_TOKEN_MINUTES = 6 * 60


def _committed_world(engine: Engine) -> Iterator[ContractWorld]:
    before = _table_keys(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
    head = {"seq": row[0], "hash": row[1]} if row is not None else None
    session = Session(engine, expire_on_commit=False)
    try:
        app = create_app()
        # The world's access tokens must outlive the module: the fuzzing module runs longer than the default
        # 15 minutes on a loaded machine, and a token expiring part-way turns later answers into 401s, which
        # makes the stateful phase's replays differ from their first run (Hypothesis' FlakyStrategyDefinition).
        with (
            pytest.MonkeyPatch.context() as patch,
            TestClient(app, raise_server_exceptions=False) as client,
        ):
            patch.setattr(get_settings(), "access_token_minutes", WORLD_TOKEN_MINUTES)
            world = _build(session, app, client)
            patch.undo()
            yield world
    finally:
        session.close()
        _delete_new_rows(engine, before, head)
        ratelimit.reset()


def _build(session: Session, app: FastAPI, client: TestClient) -> ContractWorld:
    today = date.today()
    staff_a = make_account(session, Role.staff, COUNTY_A)
    staff_b = make_account(session, Role.staff, COUNTY_B)
    staff_city = make_account(session, Role.staff, CITY_A)
    auditor = make_account(session, Role.auditor, COUNTY_A)
    admin = make_account(session, Role.admin)
    supervisor = make_account(
        session, Role.supervisor, COUNTY_A, term=(today - timedelta(days=30), today + timedelta(days=365))
    )
    institution = make_account(session, Role.institution, COUNTY_A)
    association = make_account(session, Role.association)
    department = make_account(session, Role.department)
    device = make_account(session, Role.consumer_device)
    # Accounts in county A that the matrix deactivates; nobody signs in with them.
    victim = make_account(session, Role.supervisor, COUNTY_A, term=(today, today + timedelta(days=365)))

    market = make_operator(session, staff_a, name="契约测试农贸市场")
    operator_user = make_account(session, Role.operator, operator_id=market.id)
    stall = make_stall(session, market)
    instrument = make_instrument(session, market, stall=stall, verified_on=today - timedelta(days=10))
    record = make_record(session, market, "instrument_unverified")
    open311_client, api_key = open311_service.create_client(session, name="契约测试客户端", actor=SYSTEM)
    device_row = make_device(session, operator_user)
    note = InboxNotification(
        recipient_id=operator_user.id or 0,
        kind="verification_due",
        category="verification",
        locale="zh-CN",
        title="标题",
        body="正文",
        deep_link=f"gongping://instruments/{instrument.id}",
        data={"kind": "verification_due", "category": "verification"},
        dedupe_key=f"inbox:contract-{operator_user.id}",
    )
    session.add(note)
    session.commit()

    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for role, account in (
        ("consumer_device", device),
        ("supervisor", supervisor),
        ("operator", operator_user),
        ("staff_a", staff_a),
        ("staff_b", staff_b),
        ("staff_city", staff_city),
        ("auditor", auditor),
        ("institution", institution),
        ("association", association),
        ("department", department),
        ("admin", admin),
    ):
        headers[role] = login(client, account)
    ratelimit.reset()

    def created(resp_method: str, path: str, role: str = "staff_a", **kwargs: object) -> dict[str, object]:
        resp = client.request(resp_method, path, headers=headers[role], **kwargs)  # type: ignore[arg-type]
        assert resp.status_code in (200, 201, 202), f"{resp_method} {path}: {resp.status_code} {resp.text}"
        body: dict[str, object] = resp.json()
        return body

    # A complaint with a photo, filed in 西湖区 and routed into a case there.
    resp = post_complaint(client, headers["consumer_device"], complaint_json(), [jpeg(photo_like(64, 48))])
    assert resp.status_code == 201, resp.text
    complaint_id = int(resp.json()["id"])
    event = session.execute(
        select(OutboxEvent).where(col(OutboxEvent.dedupe_key) == f"complaint.created:{complaint_id}")
    ).scalar_one()
    session.commit()  # SQLite: no transaction of ours may stay open while the app or the task writes
    cases_tasks.route_event(event.id or 0)
    case = session.execute(select(Case).where(col(Case.complaint_id) == complaint_id)).scalar_one()
    assert case.jurisdiction_code == COUNTY_A, case
    photo = session.execute(
        select(ComplaintPhoto).where(col(ComplaintPhoto.complaint_id) == complaint_id)
    ).scalar_one()
    session.commit()

    correction = created(
        "POST",
        f"/api/v1/records/{record.id}/corrections",
        "operator",
        json={"action": "revoke", "reasons": "当日秤经检定合格，称重无误"},
    )
    interview = created(
        "POST",
        "/api/v1/interviews",
        json={
            "operator_id": market.id,
            "kind": "interview",
            "scheduled_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "place": "西湖区市场监管局",
            "subject": "近期监督检查不合格及整改",
        },
    )
    inspection = created(
        "POST",
        "/api/v1/inspections",
        json={
            "operator_id": market.id,
            "inspected_on": (today - timedelta(days=1)).isoformat(),
            "items": [{"item": "verification_marks", "result": "pass"}],
        },
    )
    plan = created(
        "POST", "/api/v1/inspection-plans", json={"period_key": "2026-Q4", "jurisdiction_code": COUNTY_A}
    )
    created(
        "POST",
        f"/api/v1/operators/{market.id}/self-commitment",
        "operator",
        json={"text_version": "2017-1", "signer": "测试人"},
    )
    yesterday = (today - timedelta(days=1)).isoformat()
    feed_key = created(
        "POST",
        "/api/v1/exchange/keys",
        json={
            "name": "契约测试密钥",
            "department": "西湖区发展和改革局",
            "jurisdiction_codes": [COUNTY_A],
            "fields": ["operator_identity"],
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
    )
    submission = created(
        "POST",
        "/api/v1/intake/verifications",
        "institution",
        json={
            "instrument_id": instrument.id,
            "verified_on": yesterday,
            "passed": True,
            "certificate_no": "C-1",
        },
    )
    # Associations report on their members only (Art. 16): the market joins first.
    membership = created(
        "POST",
        "/api/v1/intake/association-memberships",
        "association",
        json={"operator_uscc": market.uscc, "joined_on": (today - timedelta(days=30)).isoformat()},
    )
    report = created(
        "POST",
        "/api/v1/intake/association-reports",
        "association",
        json={"measure": "warning", "operator_id": market.id, "fact_date": yesterday, "summary": "行业警告"},
    )
    csv = f"出厂编号,统一社会信用代码,检定日期,检定结果,证书编号,有效期至,备注\n{instrument.serial},{market.uscc},{yesterday},合格,C-2,,\n"
    job = created(
        "POST",
        "/api/v1/intake/verifications/import",
        "institution",
        files={"file": ("verifications.csv", csv.encode(), "text/csv")},
    )
    # An arbitration verification (Art. 14(3)) of the market's instrument, asked of the institution.
    created("POST", f"/api/v1/cases/{case.id}/accept")
    created("POST", f"/api/v1/cases/{case.id}/investigate")
    arbitration = created(
        "POST",
        f"/api/v1/cases/{case.id}/arbitrations",
        json={"instrument_id": instrument.id, "institution_id": institution.id, "reason": "争议计量器具"},
    )
    qr_token = qr_service.code_of(market).token
    session.commit()

    ids: dict[str, int | str] = {
        "operator_id": market.id or 0,
        "stall_id": stall.id or 0,
        "instrument_id": instrument.id or 0,
        "record_id": record.id or 0,
        "correction_id": int(str(correction["id"])),
        "interview_id": int(str(interview["id"])),
        "inspection_id": int(str(inspection["id"])),
        "plan_id": int(str(plan["id"])),
        "complaint_id": complaint_id,
        "photo_id": photo.id or 0,
        "case_id": case.id or 0,
        "account_id": victim.id or 0,
        "device_id": device_row.id or 0,
        "notification_id": note.id or 0,
        "open311_client_id": open311_client.id or 0,
        "api_key": api_key,
        "service_request_id": str(complaint_id),
        "qr_token": qr_token,
        "key_id": int(str(feed_key["id"])),
        "feed_key": str(feed_key["api_key"]),
        "submission_id": int(str(submission["id"])),
        "report_id": int(str(report["id"])),
        "membership_id": int(str(membership["id"])),
        "job_id": int(str(job["id"])),
        "arbitration_id": int(str(arbitration["id"])),
    }
    return ContractWorld(app=app, client=client, headers=headers, ids=ids)


@pytest.fixture(scope="module")
def contract_world(db_engine: Engine) -> Iterator[ContractWorld]:
    """The committed world, built once per module and removed after it."""
    yield from _committed_world(db_engine)
