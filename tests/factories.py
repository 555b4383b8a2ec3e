"""Typed factories for test data."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session

from backend.audit.service import SYSTEM
from backend.auth import service as auth_service
from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.common.schemas import LonLat
from backend.instruments import service as instrument_service
from backend.instruments.models import Instrument
from backend.instruments.schemas import InstrumentCreate, VerificationCreate
from backend.intake.models import IntakeJob, IntakeRowError, JobKind, JobState
from backend.jurisdictions.models import Jurisdiction
from backend.notices.models import Device
from backend.operators import service as operator_service
from backend.operators.models import Operator, Sector, Stall
from backend.operators.schemas import OperatorCreate, StallCreate
from backend.operators.uscc import random_usccs
from backend.records import service as record_service
from backend.records.models import IntegrityRecord
from backend.records.rules import RecordKind

PASSWORD = "Test-password-2026"
COUNTY_A = "330106"  # 西湖区, in 杭州市 330100
COUNTY_B = "330102"  # 上城区, also in 杭州市
CITY_A = "330100"
OTHER_PROVINCE_COUNTY = "110105"  # 北京市朝阳区

_counter = itertools.count(1)
_codes = iter(random_usccs("330106", 20000, seed=7))


def next_uscc() -> str:
    """A fresh valid Unified Social Credit Code."""
    return next(_codes)


def make_account(
    session: Session,
    role: Role,
    jurisdiction_code: str | None = None,
    *,
    operator_id: int | None = None,
    username: str | None = None,
    term: tuple[date, date] | None = None,
) -> Account:
    """An account with the shared test password."""
    return auth_service.create_account(
        session,
        actor=SYSTEM,
        username=username or f"{role.value}_{next(_counter)}",
        password=PASSWORD,
        role=role,
        jurisdiction_code=jurisdiction_code,
        operator_id=operator_id,
        term_starts_on=term[0] if term else None,
        term_ends_on=term[1] if term else None,
    )


def scope_of(session: Session, account: Account) -> Scope:
    """The scope of a staff account (or everything, for admins)."""
    if account.jurisdiction_code is None:
        return Scope(account, "/")
    jurisdiction = session.get(Jurisdiction, account.jurisdiction_code)
    assert jurisdiction is not None
    return Scope(account, jurisdiction.path)


def make_operator(
    session: Session,
    staff: Account,
    *,
    county: str = COUNTY_A,
    sector: Sector = Sector.market,
    name: str | None = None,
    location: tuple[float, float] | None = (120.1052, 30.2795),
) -> Operator:
    """An operator registered by ``staff``."""
    data = OperatorCreate(
        uscc=next_uscc(),
        name=name or f"测试经营者{next(_counter)}",
        sector=sector,
        address="测试地址 1 号",
        legal_representative="测试人",
        jurisdiction_code=county,
        location=LonLat(lon=location[0], lat=location[1]) if location else None,
    )
    return operator_service.create(session, data=data, scope=scope_of(session, staff))


def login(client: TestClient, account: Account, password: str = PASSWORD) -> dict[str, str]:
    """Authorization headers for ``account``."""
    resp = client.post("/api/v1/auth/token", data={"username": account.username, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def make_stall(
    session: Session,
    market: Operator,
    *,
    number: str | None = None,
    name: str = "",
    holder_name: str = "张三丰",
    holder_phone: str | None = "13800138000",
) -> Stall:
    """A stall in ``market``, added by the system actor."""
    data = StallCreate(
        number=number or f"A{next(_counter)}", name=name, holder_name=holder_name, holder_phone=holder_phone
    )
    return operator_service.add_stall(session, market=market, data=data, actor=SYSTEM)


def make_instrument(
    session: Session,
    operator: Operator,
    *,
    stall: Stall | None = None,
    type_code: str = "price_scale",
    verified_on: date | None = None,
    passed: bool = True,
) -> Instrument:
    """An instrument of ``operator`` (at ``stall``), verified on ``verified_on`` if given."""
    instrument = instrument_service.create(
        session,
        operator=operator,
        data=InstrumentCreate(
            type_code=type_code, serial=f"SN{next(_counter):06d}", stall_id=stall.id if stall else None
        ),
        actor=SYSTEM,
    )
    if verified_on is not None:
        instrument_service.record_verification(
            session,
            instrument=instrument,
            data=VerificationCreate(verified_on=verified_on, passed=passed, institution="测试计量院"),
            actor=SYSTEM,
        )
    return instrument


def complaint_json(**overrides: Any) -> dict[str, Any]:
    """A valid complaint JSON part (a geotagged short-weight complaint), with overrides."""
    body: dict[str, Any] = {
        "category": "short_weight",
        "description": "称了两斤苹果，回家复称只有一斤八两",
        "location": {
            "lon": 120.1052,
            "lat": 30.2795,
            "accuracy_m": 12.5,
            "coord_system": "wgs84",
            "captured_at": "2026-05-01T10:20:30+08:00",
        },
    }
    body.update(overrides)
    return body


def post_complaint(
    client: TestClient,
    headers: dict[str, str],
    complaint: dict[str, Any] | str | None = None,
    photos: Sequence[bytes] = (),
    *,
    key: str | None = None,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
) -> Response:
    """POST /api/v1/complaint-form as the web page does: a JSON part, photo parts and an Idempotency-Key."""
    part = (
        complaint
        if isinstance(complaint, str)
        else json.dumps(complaint or complaint_json(), ensure_ascii=False)
    )
    files = [("photos", (filename, data, content_type)) for data in photos]
    all_headers = {**headers, "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(
        "/api/v1/complaint-form", data={"complaint": part}, files=files or None, headers=all_headers
    )


def make_record(
    session: Session,
    operator: Operator,
    kind: RecordKind | str = "complaint_substantiated",
    *,
    fact_date: date | None = None,
    verified: bool = True,
    source: str = "staff",
    source_ref: str | None = None,
    instrument_still_in_use: bool | None = None,
    social_impact: bool | None = None,
) -> IntegrityRecord:
    """An integrity record about ``operator`` by the system actor, verified unless told otherwise."""
    return record_service.create(
        session,
        operator=operator,
        kind=kind,
        fact_date=fact_date or date.today() - timedelta(days=30),
        source=source,
        source_ref=source_ref,
        state="verified" if verified else "reported",
        instrument_still_in_use=instrument_still_in_use,
        social_impact=social_impact,
        actor=SYSTEM,
    )


def make_device(
    session: Session,
    account: Account,
    *,
    token: str | None = None,
    platform: str = "android",
    locale: str = "zh-CN",
    timezone: str | None = None,
    provider: str = "fcm",
) -> Device:
    """An active push device of ``account`` (a fresh FCM-shaped token unless given)."""
    from backend.notices import service as inbox_service
    from backend.notices.schemas import DeviceCreate

    data = DeviceCreate.model_validate(
        {
            "token": token or f"tok_{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "platform": platform,
            "locale": locale,
            "timezone": timezone,
            "provider": provider,
        }
    )
    return inbox_service.register_device(session, account=account, data=data).device


def make_intake_job(
    session: Session,
    account: Account,
    *,
    state: JobState = JobState.running,
    filename: str = "检定结果.csv",
    total_rows: int = 200,
    rows_done: int = 50,
    imported: int = 45,
    rejected: int = 5,
    error_row: int = 7,
) -> IntakeJob:
    """A verification-results CSV job of ``account`` part way through, with one row error (an unknown serial)."""
    job = IntakeJob(
        account_id=account.id or 0,
        kind=JobKind.verifications,
        state=state,
        filename=filename,
        file_key="intake/x",
        file_sha256="0" * 64,
        encoding="utf-8",
        total_rows=total_rows,
        rows_done=rows_done,
        imported=imported,
        rejected=rejected,
    )
    session.add(job)
    session.flush()
    session.add(
        IntakeRowError(
            job_id=job.id or 0,
            row_number=error_row,
            column_name="serial",
            code="instrument_unknown",
            message_zh="未找到该出厂编号的计量器具",
            message_en="no instrument with this serial",
        )
    )
    session.flush()
    return job
