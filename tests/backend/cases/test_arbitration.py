"""Arbitration verification (仲裁检定, Art. 14(3), issue 14 item 10) and institutions seeing the class of the
operator whose instrument they verify (Art. 15(2), item 11)."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.cases.models import Case
from backend.complaints.models import ComplaintEvent
from backend.instruments.models import Instrument
from backend.records import rating
from backend.records.models import IntegrityRecord
from tests.backend.cases.conftest import Bureaus, complaint_of, file_complaint, route
from tests.factories import (
    COUNTY_A,
    COUNTY_B,
    login,
    make_account,
    make_instrument,
    make_operator,
    make_record,
)

Headers = dict[str, dict[str, str]]
YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


def _investigating(client: TestClient, session: Session, bureaus: Bureaus, headers: Headers) -> Case:
    case = route(session, file_complaint(client, headers["filer"], operator_id=bureaus.market.id))
    for step in ("accept", "investigate"):
        assert client.post(f"/api/v1/cases/{case.id}/{step}", headers=headers["county_a"]).status_code == 200
    return case


def _world(session: Session, bureaus: Bureaus) -> tuple[Instrument, Account]:
    instrument = make_instrument(session, bureaus.market, verified_on=date.today() - timedelta(days=30))
    institution = make_account(session, Role.institution, COUNTY_A)
    session.commit()
    return instrument, institution


def _order(client: TestClient, case: Case, instrument: Instrument, institution: Account, who: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/cases/{case.id}/arbitrations",
        headers=who,
        json={"instrument_id": instrument.id, "institution_id": institution.id, "reason": "双方对称重有争议"},
    )


def test_a_failed_arbitration_substantiates_the_case_with_the_instrument_record(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _investigating(client, session, bureaus, headers)
    instrument, institution = _world(session, bureaus)
    ordered = _order(client, case, instrument, institution, headers["county_a"])
    assert ordered.status_code == 201, ordered.text
    arbitration_id = ordered.json()["id"]
    assert ordered.json()["result"] == "pending"
    # While it is pending, the finding waits for it.
    early = client.post(
        f"/api/v1/cases/{case.id}/unsubstantiate",
        headers=headers["county_a"],
        json={"findings": "未发现问题"},
    )
    assert early.status_code == 409 and early.json()["error"]["code"] == "arbitration_pending"
    inst = login(client, institution)
    asked = client.get("/api/v1/intake/arbitrations", headers=inst).json()
    assert [a["id"] for a in asked["items"]] == [arbitration_id]
    staff_view = client.get(
        f"/api/v1/operators/{bureaus.market.id}/rating", headers=headers["county_a"]
    ).json()
    assert asked["items"][0]["operator_class"] == staff_view["class"]
    assert "complainant" not in str(asked) and "filer" not in str(asked)
    resp = client.post(
        f"/api/v1/intake/arbitrations/{arbitration_id}/result",
        headers=inst,
        json={
            "passed": False,
            "verified_on": YESTERDAY,
            "certificate_no": "ZC-2026-001",
            "notes": "示值超差",
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"] == "failed"
    session.expire_all()
    decided = session.get(Case, case.id)
    assert decided is not None and decided.state.value == "substantiated"
    kinds = {
        r.kind.value: r
        for r in session.execute(
            select(IntegrityRecord).where(col(IntegrityRecord.id).in_(decided.record_ids))
        ).scalars()
    }
    assert set(kinds) == {"complaint_substantiated", "instrument_failed_verification"}
    assert kinds["instrument_failed_verification"].instrument_id == instrument.id
    history = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()["history"]
    actions = [h["action"] for h in history]
    assert actions[-3:] == ["arbitration_ordered", "arbitration_result", "substantiated"]
    audited = set(
        session.execute(
            select(col(AuditEntry.action)).where(
                col(AuditEntry.entity_type) == "case", col(AuditEntry.entity_id) == str(case.id)
            )
        ).scalars()
    )
    assert {"case.arbitration_ordered", "case.arbitration_result", "case.substantiated"} <= audited
    # The filer's timeline says an arbitration was ordered and what it found, without naming anyone.
    notes = list(
        session.execute(
            select(col(ComplaintEvent.note_zh))
            .where(col(ComplaintEvent.complaint_id) == complaint_of(session, case).id)
            .order_by(col(ComplaintEvent.id))
        ).scalars()
    )
    assert any("仲裁检定" in n for n in notes) and any("不合格" in n for n in notes)
    again = client.post(
        f"/api/v1/intake/arbitrations/{arbitration_id}/result",
        headers=inst,
        json={"passed": True, "verified_on": YESTERDAY, "certificate_no": "ZC-2026-002"},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "arbitration_decided"


def test_a_passed_arbitration_lets_staff_find_the_complaint_unsubstantiated(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _investigating(client, session, bureaus, headers)
    instrument, institution = _world(session, bureaus)
    arbitration_id = _order(client, case, instrument, institution, headers["county_a"]).json()["id"]
    # Staff record a paper certificate on the institution's behalf.
    resp = client.post(
        f"/api/v1/cases/{case.id}/arbitrations/{arbitration_id}/result",
        headers=headers["county_a"],
        json={"passed": True, "verified_on": YESTERDAY, "certificate_no": "ZC-2026-003"},
    )
    assert resp.status_code == 200, resp.text
    session.expire_all()
    assert session.get(Case, case.id).state.value == "investigating"  # type: ignore[union-attr]
    done = client.post(
        f"/api/v1/cases/{case.id}/unsubstantiate",
        headers=headers["county_a"],
        json={"findings": "仲裁检定合格，未发现缺斤短两"},
    )
    assert done.status_code == 200, done.text
    listed = client.get(f"/api/v1/cases/{case.id}/arbitrations", headers=headers["county_a"]).json()
    assert [(a["id"], a["result"], a["certificate_no"]) for a in listed] == [
        (arbitration_id, "passed", "ZC-2026-003")
    ]


def test_ordering_is_checked_and_scoped(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    instrument, institution = _world(session, bureaus)
    routed = route(session, file_complaint(client, headers["filer"], operator_id=bureaus.market.id))
    not_yet = _order(client, routed, instrument, institution, headers["county_a"])
    assert not_yet.status_code == 409
    case = _investigating(client, session, bureaus, headers)
    # Another county's staff never learn the case exists.
    assert _order(client, case, instrument, institution, headers["county_b"]).status_code == 404
    # Only an instrument of the operator complained about, only a verification institution reaching it.
    other = make_operator(session, bureaus.county_a, name="别家超市")
    foreign = make_instrument(session, other)
    far_institution = make_account(session, Role.institution, COUNTY_B)
    session.commit()
    wrong_instrument = _order(client, case, foreign, institution, headers["county_a"])
    assert (
        wrong_instrument.status_code == 422
        and wrong_instrument.json()["error"]["code"] == "unknown_instrument"
    )
    not_an_institution = _order(client, case, instrument, bureaus.county_a, headers["county_a"])
    assert (
        not_an_institution.status_code == 422
        and not_an_institution.json()["error"]["code"] == "unknown_institution"
    )
    too_far = _order(client, case, instrument, far_institution, headers["county_a"])
    assert too_far.status_code == 422 and too_far.json()["error"]["code"] == "unknown_institution"
    first = _order(client, case, instrument, institution, headers["county_a"])
    assert first.status_code == 201
    twice = _order(client, case, instrument, institution, headers["county_a"])
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "arbitration_pending"
    # Another institution cannot record the result of one not asked of it.
    stranger = make_account(session, Role.institution, COUNTY_A)
    session.commit()
    refused = client.post(
        f"/api/v1/intake/arbitrations/{first.json()['id']}/result",
        headers=login(client, stranger),
        json={"passed": False, "verified_on": YESTERDAY, "certificate_no": "X"},
    )
    assert refused.status_code == 404


def test_institutions_see_the_class_of_operators_whose_instruments_they_verify(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    instrument, institution = _world(session, bureaus)
    # Three substantiated complaints within the window make the market untrustworthy (Art. 13(4)).
    for days in (40, 30, 20):
        make_record(
            session, bureaus.market, "complaint_substantiated", fact_date=date.today() - timedelta(days=days)
        )
    rating.rerate_operator(session, bureaus.market.id or 0)
    other = make_instrument(session, make_operator(session, bureaus.county_a, name="未送检的店"))
    session.commit()
    inst = login(client, institution)
    submitted = client.post(
        "/api/v1/intake/verifications",
        headers=inst,
        json={
            "instrument_id": instrument.id,
            "verified_on": YESTERDAY,
            "passed": True,
            "certificate_no": "C-9",
        },
    )
    assert submitted.status_code == 201, submitted.text
    cls = submitted.json()["operator_class"]
    assert cls == "untrustworthy"
    listed = client.get("/api/v1/intake/verifications", headers=inst).json()["items"]
    assert listed[0]["operator_class"] == cls
    read = client.get(f"/api/v1/intake/instruments/{instrument.id}/operator-class", headers=inst)
    assert read.status_code == 200, read.text
    assert (read.json()["operator_id"], read.json()["operator_class"]) == (bureaus.market.id, cls)
    # An instrument it neither verified nor is asked to verify stays hidden.
    hidden = client.get(f"/api/v1/intake/instruments/{other.id}/operator-class", headers=inst)
    assert hidden.status_code == 404
