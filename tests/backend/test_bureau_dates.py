"""Every calendar date is the bureau's (issue 14, item 5): the day's flows run at 23:30 UTC (07:30 in Shanghai)
and at 16:30 UTC (00:30 in Shanghai), here on New Year's Eve in UTC, already New Year's Day in Beijing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Role
from backend.complaints import service as complaints
from backend.complaints.models import Complaint
from backend.dates import bureau_date
from backend.notices.delivery import resolve_context
from backend.notices.handlers import notices_for
from backend.operators.schemas import SelfCommitmentCreate
from backend.operators.service import sign_commitment
from backend.qr import service as qr
from backend.records import service as records
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind
from notifications.templates import render
from tests.backend.cases.conftest import file_and_route, outbox
from tests.clock import freeze
from tests.factories import COUNTY_A, login, make_account, make_operator

NEW_YEAR = date(2027, 1, 1)


@pytest.mark.parametrize(
    "at", [datetime(2026, 12, 31, 23, 30, tzinfo=UTC), datetime(2026, 12, 31, 16, 30, tzinfo=UTC)]
)
def test_the_days_flows_all_say_the_bureaus_date(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch, at: datetime
) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff, name="西溪农贸市场")
    filer = make_account(session, Role.consumer_device)
    session.commit()
    filer_headers = login(client, filer)
    freeze(monkeypatch, at)
    assert bureau_date() == NEW_YEAR and bureau_date(at) == NEW_YEAR

    # A complaint received now: its receipt, the notice acknowledging it, the case number's year.
    case = file_and_route(client, session, filer_headers, operator_id=market.id)
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    assert complaints.to_operator_view(session, complaint, "zh-CN").received_on == NEW_YEAR
    assert case.case_no.startswith("TS2027")
    [notice] = [n for e in outbox(session, "complaint.created") for n in notices_for(session, e)]
    assert notice.context["received_on"] == NEW_YEAR
    text = render(notice.kind, "zh-CN", resolve_context(notice.context, "zh-CN", "Asia/Shanghai")).body
    assert "于2027-01-01收到" in text

    # A self-commitment signed now: the public profile's date and its good record's date agree.
    commitment = sign_commitment(
        session, operator=market, data=SelfCommitmentCreate(text_version="2017-1", signer="周明"), actor=staff
    )
    good = records.find_by_source(
        session, records.commitment_ref(commitment.id or 0), RecordKind.COMMITMENT_KEPT
    )
    assert good is not None and good.fact_date == NEW_YEAR
    public = qr._operator_public(session, market, "zh-CN")
    assert public.self_commitment is not None and public.self_commitment.signed_on == NEW_YEAR

    # A record of something that happened today, written now, is not "in the future".
    record: IntegrityRecord = records.create(
        session,
        operator=market,
        kind=RecordKind.SHORT_WEIGHT,
        fact_date=NEW_YEAR,
        source=RecordSource.staff,
        actor=staff,
    )
    assert record.fact_date == NEW_YEAR
