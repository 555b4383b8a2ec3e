"""An operator's correction request (Art. 22) tells its bureau's staff that a decision is due."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM
from backend.auth.models import Role
from backend.db import utcnow
from backend.notices.delivery import resolve_context
from backend.notices.handlers import notices_for
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.records import corrections
from backend.records import service as records
from backend.records.models import CorrectionAction, CorrectionRequest, RecordSource
from backend.records.schemas import CorrectionCreate
from backend.records.service import bureau_today
from notifications.templates import render
from tests.factories import COUNTY_A, COUNTY_B, make_account, make_operator


def _requested(session: Session) -> tuple[CorrectionRequest, OutboxEvent, list[int]]:
    staff = make_account(session, Role.staff, COUNTY_A)
    make_account(session, Role.staff, COUNTY_B)  # another county's staff are not told
    operator = make_operator(session, staff, name="西溪菜场")
    user = make_account(session, Role.operator, operator_id=operator.id)
    record = records.create(
        session,
        operator=operator,
        kind="short_weight",
        fact_date=bureau_today() - timedelta(days=3),
        source=RecordSource.staff,
        state="verified",
        actor=SYSTEM,
    )
    row = corrections.request(
        session,
        record=record,
        data=CorrectionCreate(action=CorrectionAction.revoke, reasons="称已校准，附检定证书"),
        actor=user,
    )
    event = session.exec(
        select(OutboxEvent)
        .where(OutboxEvent.topic == "correction.requested")
        .order_by(col(OutboxEvent.id).desc())
    ).first()
    assert event is not None
    return row, event, [staff.id or 0]


def test_the_bureaus_staff_are_told_with_the_decision_deadline(session: Session) -> None:
    row, event, county_staff = _requested(session)
    assert relay.DISPATCH_TASK in relay.TOPIC_TASKS["correction.requested"]
    [notice] = notices_for(session, event)
    assert notice.kind == "correction_requested"
    assert set(notice.recipients) == set(county_staff)
    assert notice.context["due_on"] == row.due_on and notice.context["operator_name"] == "西溪菜场"
    zh = render(notice.kind, "zh-CN", resolve_context(notice.context, "zh-CN", "Asia/Shanghai"))
    en = render(notice.kind, "en", resolve_context(notice.context, "en", "Asia/Shanghai"))
    assert "更正申请" in zh.title and "西溪菜场" in zh.body and str(row.id) in zh.body
    assert "correction" in en.body and en.deep_link == f"gongping://corrections/{row.id}"


def test_a_request_decided_before_dispatch_makes_no_notice(session: Session) -> None:
    row, event, _staff = _requested(session)
    row.decided_at = utcnow()
    session.add(row)
    session.flush()
    assert notices_for(session, event) == []
