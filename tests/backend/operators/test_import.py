"""CSV import: idempotent on the code, per-row errors, instruments with their latest verification."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.instruments.models import Instrument, VerificationRecord
from backend.operators.importer import import_instruments, import_operators
from backend.operators.models import Operator
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, next_uscc, scope_of

HEADER_ZH = "统一社会信用代码,名称,行业,地址,法定代表人,行政区划代码,经度,纬度\n"


def _operators_csv(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = [HEADER_ZH]
    lines += [
        f"{code},{name},market,地址{i},法人{i},{county},120.1,30.2\n"
        for i, (code, name, county) in enumerate(rows)
    ]
    return lines


def test_import_is_idempotent_and_reports_rows(session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    scope = scope_of(session, staff)
    good = [next_uscc() for _ in range(3)]
    bad_code = good[0][:-1] + ("1" if good[0][-1] != "1" else "2")
    csv_lines = _operators_csv(
        [
            (good[0], "甲", COUNTY_A),
            (good[1], "乙", COUNTY_A),
            (good[2], "丙", COUNTY_B),
            (bad_code, "丁", COUNTY_A),
            (good[0], "甲again", COUNTY_A),
        ]
    )
    report = import_operators(session, csv_lines, scope=scope)
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert sorted((e.row, e.code) for e in report.errors) == [
        (4, "jurisdiction_out_of_scope"),
        (5, "invalid_uscc"),
        (6, "duplicate_in_file"),
    ]
    again = import_operators(session, csv_lines[:3], scope=scope)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    renamed = import_operators(
        session, [HEADER_ZH, f"{good[1]},乙改名,market,地址1,法人1,{COUNTY_A},120.1,30.2\n"], scope=scope
    )
    assert renamed.updated == 1
    assert session.exec(select(Operator.name).where(Operator.uscc == good[1])).one() == "乙改名"
    actions = session.exec(
        select(AuditEntry.action).where(col(AuditEntry.action).startswith("operator.import"))
    ).all()
    assert sorted(actions) == ["operator.import_create", "operator.import_create", "operator.import_update"]


def test_missing_columns_are_refused(session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    import pytest

    from backend.errors import AppError

    with pytest.raises(AppError) as err:
        import_operators(session, ["名称,地址\n", "x,y\n"], scope=scope_of(session, staff))
    assert err.value.code == "missing_columns"


def test_instruments_with_verification(session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    scope = scope_of(session, staff)
    code = next_uscc()
    import_operators(session, _operators_csv([(code, "市场", COUNTY_A)]), scope=scope)
    recent = (date.today() - timedelta(days=30)).isoformat()
    lines = [
        "统一社会信用代码,器具类型,出厂编号,制造商,检定日期,检定结果,证书编号\n",
        f"{code},price_scale,S1,友声,{recent},合格,C1\n",
        f"{code},fuel_dispenser,S2,正星,{recent},不合格,C2\n",
        f"{code},price_scale,S3,友声,,,\n",
        f"{code},slot_machine,S4,,,,\n",
        f"{next_uscc()},price_scale,S5,,,,\n",
        f"{code},price_scale,S6,,2099-01-01,合格,C6\n",
    ]
    report = import_instruments(session, lines, scope=scope)
    assert report.created == 3
    assert sorted(e.code for e in report.errors) == [
        "unknown_instrument_type",
        "unknown_operator",
        "verification_in_future",
    ]
    s1 = session.exec(select(Instrument).where(Instrument.serial == "S1")).one()
    assert s1.last_passed is True and s1.valid_until is not None
    s2 = session.exec(select(Instrument).where(Instrument.serial == "S2")).one()
    assert s2.last_passed is False and s2.valid_until is None
    again = import_instruments(session, lines, scope=scope)
    assert again.created == 0 and again.unchanged == 3
    assert session.exec(select(func.count()).select_from(VerificationRecord)).one() == 2


def test_import_over_the_api(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    body = "".join(_operators_csv([(next_uscc(), "接口导入", COUNTY_A)])).encode("gb18030")
    resp = client.post(
        "/api/v1/operators/import",
        files={"file": ("ops.csv", body, "text/csv")},
        headers=login(client, staff),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 1
