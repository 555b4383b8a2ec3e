"""Single verification results from an institution (Art. 15): state, records, idempotency, roles and area."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from backend.audit.models import AuditEntry
from backend.audit.service import snapshot
from backend.auth.models import Role
from backend.instruments.models import Instrument, VerificationRecord
from backend.instruments.service import add_months
from backend.qr.service import key_ring
from backend.records.models import IntegrityRecord, IntegrityRecordVersion, RecordSource
from backend.records.rules import RecordKind, RecordState
from backend.records.service import bureau_today
from tests.backend.intake.conftest import World
from tests.factories import make_account, make_instrument, make_operator

TODAY = bureau_today()
URL = "/api/v1/intake/verifications"


def _body(instrument: Instrument, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instrument_id": instrument.id,
        "verified_on": (TODAY - timedelta(days=3)).isoformat(),
        "passed": True,
        "certificate_no": f"JD-{instrument.id}-01",
    }
    return body | overrides


def _records(world: World, instrument: Instrument) -> list[IntegrityRecord]:
    return list(
        world.session.exec(
            select(IntegrityRecord)
            .where(IntegrityRecord.instrument_id == instrument.id)
            .order_by(col(IntegrityRecord.id))
        ).all()
    )


def test_a_passed_verification_updates_the_instrument_and_creates_no_record(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    resp = world.client.post(
        URL, json=_body(scale, notes="现场检定"), headers=world.headers(world.institution)
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    verified_on = TODAY - timedelta(days=3)
    # Price scales have a 12-month period: valid through the day before the same date next year.
    assert body["valid_until"] == (add_months(verified_on, 12) - timedelta(days=1)).isoformat()
    assert body["verification_state"] == "valid" and body["record_ids"] == [] and body["notes"] == "现场检定"
    world.session.expire_all()
    stored = world.session.get(Instrument, scale.id)
    assert stored is not None and stored.last_verified_on == verified_on and stored.last_passed is True
    [record] = world.session.exec(
        select(VerificationRecord).where(VerificationRecord.instrument_id == scale.id)
    ).all()
    assert record.certificate_no == body["certificate_no"] and record.recorded_by_id == world.institution.id
    assert _records(world, scale) == []
    audited = world.session.exec(
        select(AuditEntry).where(
            AuditEntry.action == "instrument.verification", AuditEntry.entity_id == str(scale.id)
        )
    ).all()
    assert len(audited) == 1 and audited[0].actor_id == world.institution.id


def test_a_failed_verification_becomes_a_reported_record_from_the_institution(world: World) -> None:
    scale = make_instrument(world.session, world.operator, verified_on=TODAY - timedelta(days=100))
    resp = world.client.post(URL, json=_body(scale, passed=False), headers=world.headers(world.institution))
    assert resp.status_code == 201, resp.text
    assert resp.json()["verification_state"] == "failed" and resp.json()["valid_until"] is None
    [record] = _records(world, scale)
    assert record.kind is RecordKind.INSTRUMENT_FAILED_VERIFICATION
    assert record.source is RecordSource.institution and record.state is RecordState.REPORTED
    assert record.fact_date == TODAY - timedelta(days=3) and record.author_id == world.institution.id
    assert record.operator_id == world.operator.id and resp.json()["record_ids"] == [record.id]
    # Written set-based, yet with the same version and audit trail as records.service.create gives.
    [version] = world.session.exec(
        select(IntegrityRecordVersion).where(IntegrityRecordVersion.record_id == record.id)
    ).all()
    assert version.version == 1 and version.actor_id == world.institution.id
    assert version.snapshot == snapshot(record)
    [created] = world.session.exec(
        select(AuditEntry).where(AuditEntry.action == "record.create", AuditEntry.entity_id == str(record.id))
    ).all()
    assert created.after == snapshot(record)
    # The record is a real one: staff can verify it through the records API.
    staff_headers = world.headers(world.staff)
    verified = world.client.post(f"/api/v1/records/{record.id}/verify", json={}, headers=staff_headers)
    assert verified.status_code == 200, verified.text


def test_an_instrument_found_past_its_validity_is_reported_overdue(world: World) -> None:
    scale = make_instrument(world.session, world.operator, verified_on=TODAY - timedelta(days=500))
    assert scale.valid_until is not None and scale.valid_until < TODAY - timedelta(days=3)
    lapse = scale.valid_until
    resp = world.client.post(URL, json=_body(scale), headers=world.headers(world.institution))
    assert resp.status_code == 201, resp.text
    [record] = _records(world, scale)
    assert record.kind is RecordKind.INSTRUMENT_OVERDUE and record.state is RecordState.REPORTED
    assert record.fact_date == lapse + timedelta(days=1)
    assert record.source_ref == f"instrument:{scale.id}:overdue:{lapse.isoformat()}"
    assert record.instrument_still_in_use is None  # inferred, not stated: for staff to find
    assert resp.json()["verification_state"] == "valid"


def test_the_institution_can_state_or_deny_use_past_validity(world: World) -> None:
    stated = make_instrument(world.session, world.operator, verified_on=TODAY - timedelta(days=500))
    denied = make_instrument(world.session, world.operator, verified_on=TODAY - timedelta(days=500))
    headers = world.headers(world.institution)
    assert world.client.post(URL, json=_body(stated, overdue_in_use=True), headers=headers).status_code == 201
    assert (
        world.client.post(URL, json=_body(denied, overdue_in_use=False), headers=headers).status_code == 201
    )
    [record] = _records(world, stated)
    assert record.kind is RecordKind.INSTRUMENT_OVERDUE and record.instrument_still_in_use is True
    assert _records(world, denied) == []


def test_the_same_certificate_again_returns_the_first_submission(world: World) -> None:
    scale = make_instrument(world.session, world.operator, verified_on=TODAY - timedelta(days=100))
    headers = world.headers(world.institution)
    first = world.client.post(URL, json=_body(scale, passed=False), headers=headers)
    again = world.client.post(URL, json=_body(scale, passed=False), headers=headers)
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert len(_records(world, scale)) == 1
    changed = world.client.post(URL, json=_body(scale, passed=True), headers=headers)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "certificate_conflict"


def test_instruments_are_found_by_serial_and_uscc_or_by_qr_code(world: World) -> None:
    one = make_instrument(world.session, world.operator)
    twin = make_instrument(world.session, world.other_operator)
    twin.serial = one.serial  # serials are unique per operator only
    world.session.add(twin)
    world.session.flush()
    headers = world.headers(world.institution)
    body = _body(one) | {"instrument_id": None, "serial": one.serial}
    ambiguous = world.client.post(URL, json=body, headers=headers)
    assert ambiguous.status_code == 422 and ambiguous.json()["error"]["code"] == "ambiguous_serial"
    resp = world.client.post(URL, json=body | {"operator_uscc": world.other_operator.uscc}, headers=headers)
    assert resp.status_code == 201 and resp.json()["instrument_id"] == twin.id
    token = key_ring().issue("i", one.id or 0, one.qr_serial)
    code_body = _body(one) | {"instrument_id": None, "instrument_code": f"http://x/q/{token}"}
    resp = world.client.post(URL, json=code_body, headers=headers)
    assert resp.status_code == 201 and resp.json()["instrument_id"] == one.id
    forged = world.client.post(
        URL, json=code_body | {"instrument_code": token[:-4] + "AAAA"}, headers=headers
    )
    assert forged.status_code == 422 and forged.json()["error"]["code"] == "invalid_instrument_code"


def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    headers = world.headers(world.institution)
    cases = [
        ({"verified_on": (TODAY + timedelta(days=2)).isoformat()}, 422, "verification_in_future"),
        ({"valid_until": (TODAY - timedelta(days=30)).isoformat()}, 422, "invalid_valid_until"),
        ({"instrument_id": 99_999_999}, 404, "unknown_instrument"),
        ({"certificate_no": ""}, 422, "validation_error"),
        ({"instrument_id": None}, 422, "validation_error"),
    ]
    for overrides, status, code in cases:
        resp = world.client.post(URL, json=_body(scale, **overrides), headers=headers)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (overrides, resp.text)
    world.session.expire_all()
    assert world.session.get(Instrument, scale.id).last_verified_on is None  # type: ignore[union-attr]
    assert (
        world.session.exec(
            select(VerificationRecord).where(VerificationRecord.instrument_id == scale.id)
        ).all()
        == []
    )


def test_english_messages_on_request(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    headers = world.headers(world.institution) | {"Accept-Language": "en"}
    resp = world.client.post(URL, json=_body(scale, instrument_id=99_999_999), headers=headers)
    assert resp.status_code == 404 and resp.json()["error"]["message"].startswith("no such instrument")


def test_only_institutions_submit(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    for account in (world.staff, world.association, make_account(world.session, Role.admin)):
        resp = world.client.post(URL, json=_body(scale), headers=world.headers(account))
        assert resp.status_code == 403, (account.role, resp.text)
    assert world.client.post(URL, json=_body(scale)).status_code == 401


def test_an_institution_bound_to_a_division_reaches_only_that_division(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    resp = world.client.post(URL, json=_body(scale), headers=world.headers(world.beijing_institution))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_instrument"
    beijing_staff = make_account(world.session, Role.staff, "110105")
    local = make_instrument(world.session, make_operator(world.session, beijing_staff, county="110105"))
    resp = world.client.post(URL, json=_body(local), headers=world.headers(world.beijing_institution))
    assert resp.status_code == 201, resp.text


def test_institutions_see_only_their_own_submissions(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    created = world.client.post(URL, json=_body(scale), headers=world.headers(world.institution)).json()
    other = make_account(world.session, Role.institution)
    assert world.client.get(f"{URL}/{created['id']}", headers=world.headers(other)).status_code == 404
    mine = world.client.get(f"{URL}/{created['id']}", headers=world.headers(world.institution))
    assert mine.status_code == 200 and mine.json()["certificate_no"] == created["certificate_no"]
    listed = world.client.get(URL, headers=world.headers(other)).json()
    assert listed["total"] == 0
    assert world.client.get(URL, headers=world.headers(world.institution)).json()["total"] == 1


def test_a_lapse_the_overdue_sweep_already_reported_is_not_reported_twice(world: World) -> None:
    from backend.records.service import record_overdue_instrument

    scale = make_instrument(world.session, world.operator, verified_on=TODAY - timedelta(days=500))
    assert scale.valid_until is not None
    swept = record_overdue_instrument(
        world.session, instrument_id=scale.id or 0, valid_until=scale.valid_until
    )
    assert swept is not None
    resp = world.client.post(URL, json=_body(scale), headers=world.headers(world.institution))
    assert resp.status_code == 201 and resp.json()["record_ids"] == []
    assert [r.id for r in _records(world, scale)] == [swept.id]
