"""Every step of a case: the allowed ones with what they record and tell, every disallowed one as 409,
substantiation into verified records and a new rating, reopening, and the operator's findings."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.cases.models import Case, CaseAction, CaseState
from backend.cases.service import TRANSITIONS
from backend.notices import handlers as notification_handlers
from backend.notices.delivery import resolve_context
from backend.operators.models import ManagementAssessment
from backend.records import rating
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import IntegrityClass, RecordKind, RecordState
from notifications.templates import render
from tests.backend.cases.conftest import Bureaus, complaint_of, file_and_route, outbox
from tests.factories import COUNTY_B, login, make_account, make_instrument

Headers = dict[str, dict[str, str]]

#: A valid body for every step, so a refusal can only be about the state.
BODIES: dict[str, dict[str, Any]] = {
    "accept": {},
    "reject": {"reason": "not_metrology"},
    "investigate": {},
    "substantiate": {"findings": "复称短少 120 克，电子秤内置作弊程序"},
    "unsubstantiate": {"findings": "复称无短少"},
    "mediate": {"agreement": "经营者退还差价 12 元"},
    "close": {"reason": "投诉人撤回投诉"},
    "reopen": {"reason": "投诉人补充新证据"},
    "transfer": {"jurisdiction_code": COUNTY_B, "reason": "经营地址在上城区"},
}
ACTION_OF = {
    "accept": CaseAction.accepted,
    "reject": CaseAction.rejected,
    "investigate": CaseAction.investigating,
    "substantiate": CaseAction.substantiated,
    "unsubstantiate": CaseAction.unsubstantiated,
    "mediate": CaseAction.mediated,
    "close": CaseAction.closed,
    "reopen": CaseAction.reopened,
    "transfer": CaseAction.transferred,
}
#: The steps that bring a fresh (routed) case into each state.
PATHS: dict[CaseState, list[str]] = {
    CaseState.routed: [],
    CaseState.accepted: ["accept"],
    CaseState.not_accepted: ["reject"],
    CaseState.investigating: ["accept", "investigate"],
    CaseState.substantiated: ["accept", "investigate", "substantiate"],
    CaseState.unsubstantiated: ["accept", "investigate", "unsubstantiate"],
    CaseState.mediated: ["accept", "mediate"],
    CaseState.closed: ["accept", "investigate", "unsubstantiate", "close"],
}


def step(
    client: TestClient, h: dict[str, str], case_id: int, name: str, body: dict[str, Any] | None = None
) -> Any:
    """POST one step; returns the response."""
    return client.post(
        f"/api/v1/cases/{case_id}/{name}", json=BODIES[name] if body is None else body, headers=h
    )


def drive(client: TestClient, h: dict[str, str], case_id: int, steps: list[str]) -> None:
    """Apply steps that must succeed."""
    for name in steps:
        resp = step(client, h, case_id, name)
        assert resp.status_code == 200, (name, resp.text)


def _market_case(client: TestClient, session: Session, bureaus: Bureaus, headers: Headers) -> Case:
    return file_and_route(client, session, headers["filer"], operator_id=bureaus.market.id)


@pytest.mark.parametrize("state", list(PATHS))
def test_every_step_the_state_does_not_allow_is_409(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, state: CaseState
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, PATHS[state])
    for name, action in ACTION_OF.items():
        if state in TRANSITIONS[action]:
            continue
        resp = step(client, headers["county_a"], case.id or 0, name)
        assert resp.status_code == 409, (state, name, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["details"] == {
            "state": state.value,
            "action": action.value,
            "allowed_from": sorted(s.value for s in TRANSITIONS[action]),
        }
    session.expire_all()
    assert session.get(Case, case.id).state == state  # type: ignore[union-attr]


def test_the_whole_way_to_substantiated_and_closed(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    h = headers["county_a"]
    accepted = step(client, h, case.id or 0, "accept", {"note": "材料齐全"}).json()
    assert accepted["state"] == "accepted" and accepted["assignee_id"] == bureaus.county_a.id
    keys = {d["key"]: d for d in accepted["deadlines"]}
    assert keys["complaint_acceptance_decision"]["ended_by"] == "accepted"
    assert (
        keys["complaint_mediation_end"]["ended_at"] is None
        and keys["complaint_mediation_end"]["working_days"] == 45
    )
    assert accepted["due_on"] == keys["complaint_mediation_end"]["due_on"]
    assert step(client, h, case.id or 0, "investigate").json()["state"] == "investigating"
    done = step(client, h, case.id or 0, "substantiate").json()
    assert done["state"] == "substantiated" and done["outcome"] == "substantiated" and done["due_on"] is None
    closed = step(client, h, case.id or 0, "close", {}).json()
    assert closed["state"] == "closed" and closed["closed_at"] and closed["outcome"] == "substantiated"
    # The filer follows every step, in words, without anyone's name.
    mine = client.get(f"/api/v1/complaints/{case.complaint_id}", headers=headers["filer"]).json()
    assert mine["status"] == "closed"
    assert [e["status"] for e in mine["timeline"]] == [
        "received",
        "routed",
        "accepted",
        "investigating",
        "substantiated",
        "closed",
    ]
    assert mine["timeline"][2]["note"] == "西湖区市场监督管理局已受理"
    assert all(bureaus.county_a.username not in e["note"] for e in mine["timeline"])
    # Staff see every step with who did it, and each is audited.
    detail = client.get(f"/api/v1/cases/{case.id}", headers=h).json()
    assert [e["action"] for e in detail["history"]] == [
        "routed",
        "accepted",
        "investigating",
        "substantiated",
        "closed",
    ]
    assert {e["actor_id"] for e in detail["history"][1:]} == {bureaus.county_a.id}
    actions = set(
        session.execute(
            select(col(AuditEntry.action)).where(
                col(AuditEntry.entity_type) == "case", col(AuditEntry.entity_id) == str(case.id)
            )
        ).scalars()
    )
    assert {
        "case.route",
        "case.accepted",
        "case.investigating",
        "case.substantiated",
        "case.closed",
    } <= actions
    assert "case.read" in actions


def test_outcomes_tell_the_filer_in_the_handlers_contract(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate", "unsubstantiate"])
    [event] = outbox(session, "case.outcome")
    assert event.payload == {
        "case_id": case.id,
        "case_no": case.case_no,
        "complaint_id": case.complaint_id,
        "jurisdiction_code": "330106",
        "outcome": "not_substantiated",
    }
    [notice] = notification_handlers.notices_for(session, event)
    assert notice.kind == "complaint_outcome" and notice.recipients == (bureaus.filer.id,)


@pytest.mark.parametrize(
    ("steps", "outcome"),
    [
        (["reject"], "not_accepted"),
        (["accept", "investigate", "substantiate"], "substantiated"),
        (["accept", "investigate", "unsubstantiate"], "not_substantiated"),
        (["accept", "mediate"], "mediated"),
        (["accept", "close"], "terminated"),
    ],
)
def test_each_outcome_is_emitted_once(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, steps: list[str], outcome: str
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, steps)
    assert [e.payload["outcome"] for e in outbox(session, "case.outcome")] == [outcome]


@pytest.mark.parametrize(
    ("steps", "outcome_label"),
    [(["accept", "close"], "终止调解"), (["accept", "investigate", "mediate"], "双方达成调解协议")],
)
def test_the_end_of_mediation_is_told_to_the_operator_too(
    client: TestClient,
    session: Session,
    bureaus: Bureaus,
    headers: Headers,
    steps: list[str],
    outcome_label: str,
) -> None:
    # Order No. 20 Art. 21: the decision ending mediation reaches the complainant and the operator.
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, steps)
    [event] = outbox(session, "case.outcome")
    session.expire_all()
    told = {n.kind: n for n in notification_handlers.notices_for(session, event)}
    assert set(told) == {"complaint_outcome", "complaint_handling_ended"}
    operator_notice = told["complaint_handling_ended"]
    assert operator_notice.recipients == (bureaus.market_user.id,)
    closed = session.get(Case, case.id)
    assert closed is not None and closed.decided_at is not None
    assert operator_notice.context["case_no"] == closed.case_no
    assert operator_notice.context["bureau_name"] == "西湖区市场监督管理局"
    zh = render(
        "complaint_handling_ended",
        "zh-CN",
        resolve_context(operator_notice.context, "zh-CN", "Asia/Shanghai"),
    )
    assert closed.case_no in zh.body and outcome_label in zh.body
    en = render(
        "complaint_handling_ended", "en", resolve_context(operator_notice.context, "en", "Asia/Shanghai")
    )
    assert closed.case_no in en.body and "mediation" in en.body
    # Nothing about the complainant or what was said in the case (Art. 18).
    complaint = complaint_of(session, case)
    flat = f"{zh.title} {zh.body} {en.title} {en.body}"
    for private in (
        complaint.description,
        BODIES["close"]["reason"],
        BODIES["mediate"]["agreement"],
        bureaus.filer.username,
    ):
        assert private not in flat


def test_no_operator_notice_without_mediation_or_once_the_case_moved_on(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    # Not accepted: there was no mediation to end.
    rejected = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], rejected.id or 0, ["reject"])
    # Terminated, then reopened before the notice went out: "it ended" is no longer true.
    reopened = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], reopened.id or 0, ["accept", "close", "reopen"])
    session.expire_all()
    told = {
        event.payload["case_id"]: [n.kind for n in notification_handlers.notices_for(session, event)]
        for event in outbox(session, "case.outcome")
    }
    # The filer alone is told: of the refusal with its reason, of the termination as an outcome.
    assert told == {rejected.id: ["filing_rejected"], reopened.id: ["complaint_outcome"]}


def test_reject_needs_a_listed_reason_and_its_particulars(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    h = headers["county_a"]
    assert step(client, h, case.id or 0, "reject", {"reason": "too_busy"}).status_code == 422
    missing = step(client, h, case.id or 0, "reject", {"reason": "handled_elsewhere"})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "handled_by_required"
    stray = step(client, h, case.id or 0, "reject", {"reason": "not_metrology", "handled_by": "court"})
    assert stray.json()["error"]["code"] == "handled_by_not_applicable"
    unknown = step(client, h, case.id or 0, "reject", {"reason": "duplicate", "duplicate_of_case_id": 987654})
    assert unknown.json()["error"]["code"] == "unknown_case"
    done = step(
        client,
        h,
        case.id or 0,
        "reject",
        {"reason": "handled_elsewhere", "handled_by": "consumer_association"},
    ).json()
    assert (done["state"], done["rejection_reason"], done["handled_by"]) == (
        "not_accepted",
        "handled_elsewhere",
        "consumer_association",
    )
    timeline = client.get(f"/api/v1/complaints/{case.complaint_id}", headers=headers["filer"]).json()[
        "timeline"
    ]
    assert timeline[-1]["note"] == "不予受理：已由消费者协会受理或处理"
    assert done["deadlines"][0]["ended_by"] == "rejected"


def test_reject_as_duplicate_of_an_earlier_case(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    first = _market_case(client, session, bureaus, headers)
    second = _market_case(client, session, bureaus, headers)
    body = {"reason": "duplicate", "duplicate_of_case_id": first.id}
    done = step(client, headers["county_a"], second.id or 0, "reject", body).json()
    assert done["duplicate_of_id"] == first.id


def test_terminating_needs_a_reason(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept"])
    resp = step(client, headers["county_a"], case.id or 0, "close", {})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "reason_required"
    done = step(client, headers["county_a"], case.id or 0, "close").json()
    assert (done["state"], done["outcome"]) == ("closed", "terminated")
    assert all(d["ended_at"] for d in done["deadlines"])


def test_mediation_is_for_consumer_complaints_only(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    supervisor = make_account(session, Role.supervisor, "330106")
    session.commit()
    report = file_and_route(
        client,
        session,
        login(client, supervisor),
        operator_id=bureaus.market.id,
        finding="suspected_cheating",
        category="instrument_cheating",
    )
    assert report.kind == "tip_off" and report.case_no.startswith("JB")
    drive(client, headers["county_a"], report.id or 0, ["accept"])
    resp = step(client, headers["county_a"], report.id or 0, "mediate")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "invalid_transition"


def test_reopen_a_rejection_goes_back_to_the_acceptance_decision(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["reject"])
    assert step(client, headers["county_a"], case.id or 0, "reopen", {}).status_code == 422  # reason required
    reopened = step(client, headers["county_a"], case.id or 0, "reopen").json()
    assert reopened["state"] == "routed" and reopened["rejection_reason"] is None
    drive(client, headers["county_a"], case.id or 0, ["accept"])
    history = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()["history"]
    assert [e["action"] for e in history][-3:] == ["rejected", "reopened", "accepted"]
    assert history[-2]["reason"] == "投诉人补充新证据"


# ---- substantiation, records and the rating ---------------------------------------------------------------------


def test_substantiation_makes_verified_records_and_changes_the_rating(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    market = bureaus.market
    market.management_assessment = ManagementAssessment.sound
    session.add(market)
    scale = make_instrument(session, market)
    session.commit()
    rating.rerate_operator(session, market.id or 0)
    assert rating.current(session, market).cls == IntegrityClass.TRUSTWORTHY
    case = file_and_route(client, session, headers["filer"], instrument_id=scale.id)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate"])
    body = {
        "findings": "电子秤未经检定仍在使用，复称短少",
        "record_kinds": ["instrument_unverified", "short_weight"],
        "instrument_still_in_use": True,
    }
    done = step(client, headers["county_a"], case.id or 0, "substantiate", body).json()
    made = [session.get(IntegrityRecord, rid) for rid in done["record_ids"]]
    assert [(r.kind, r.state, r.source) for r in made if r] == [
        (RecordKind.COMPLAINT_SUBSTANTIATED, RecordState.VERIFIED, RecordSource.complaint),
        (RecordKind.INSTRUMENT_UNVERIFIED, RecordState.VERIFIED, RecordSource.complaint),
        (RecordKind.SHORT_WEIGHT, RecordState.VERIFIED, RecordSource.complaint),
    ]
    unverified = made[1]
    assert (
        unverified is not None and unverified.instrument_id == scale.id and unverified.instrument_still_in_use
    )
    assert all(r is not None and r.source_ref == f"complaint:{case.complaint_id}" for r in made)
    assert all(r is not None and f"case:{case.case_no}" in r.evidence_refs for r in made)
    # The records service asked for a re-rating; doing it (what the worker does) gives the new class.
    assert {e.payload["record_id"] for e in outbox(session, "record.changed")} >= set(done["record_ids"])
    rating.rerate_operator(session, market.id or 0)
    now = rating.current(session, market)
    assert now.cls == IntegrityClass.UNTRUSTWORTHY
    assert any(r["rule"] == "art13_3_instrument_in_use" for r in now.reasons)


def test_substantiation_without_a_named_operator_needs_one_in_scope(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])  # a geotag only
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate"])
    resp = step(client, headers["county_a"], case.id or 0, "substantiate")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "operator_required"
    body = {**BODIES["substantiate"], "operator_id": bureaus.market.id}
    done = step(client, headers["county_a"], case.id or 0, "substantiate", body).json()
    assert done["operator_id"] == bureaus.market.id and len(done["record_ids"]) == 1


def test_substantiation_refuses_kinds_a_complaint_cannot_establish(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate"])
    body = {**BODIES["substantiate"], "record_kinds": ["demonstration_unit"]}
    resp = step(client, headers["county_a"], case.id or 0, "substantiate", body)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "record_kind_not_allowed"
    assert session.execute(select(IntegrityRecord)).first() is None


def test_a_patrol_report_is_not_a_consumer_complaint_for_art_13_4(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    supervisor = make_account(session, Role.supervisor, "330106")
    session.commit()
    report = file_and_route(
        client,
        session,
        login(client, supervisor),
        operator_id=bureaus.market.id,
        finding="suspected_cheating",
        category="instrument_cheating",
    )
    drive(client, headers["county_a"], report.id or 0, ["accept", "investigate"])
    resp = step(client, headers["county_a"], report.id or 0, "substantiate")
    assert resp.json()["error"]["code"] == "record_kind_required"
    body = {**BODIES["substantiate"], "record_kinds": ["metrology_cheating"]}
    done = step(client, headers["county_a"], report.id or 0, "substantiate", body).json()
    [record] = [session.get(IntegrityRecord, rid) for rid in done["record_ids"]]
    assert record is not None and (record.kind, record.source) == (
        RecordKind.METROLOGY_CHEATING,
        RecordSource.supervisor,
    )
    [event] = outbox(session, "case.outcome")
    [notice] = notification_handlers.notices_for(session, event)
    assert notice.kind == "supervisor_report_outcome" and notice.context["outcome"] == "adopted"


def test_reopened_and_unsubstantiated_revokes_the_cases_records(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    h = headers["county_a"]
    drive(client, h, case.id or 0, ["accept", "investigate", "substantiate", "close"])
    [record_id] = client.get(f"/api/v1/cases/{case.id}", headers=h).json()["record_ids"]
    reopened = step(client, h, case.id or 0, "reopen").json()
    assert reopened["state"] == "investigating"
    # Substantiating again is idempotent on the records.
    drive(client, h, case.id or 0, ["substantiate", "reopen", "unsubstantiate"])
    session.expire_all()
    record = session.get(IntegrityRecord, record_id)
    assert record is not None and record.state == RecordState.REVOKED
    assert client.get("/api/v1/me/findings", headers=headers["market"]).json()["total"] == 0
    outcomes = [e.payload["outcome"] for e in outbox(session, "case.outcome")]
    assert outcomes == ["substantiated", "substantiated", "not_substantiated"]


# ---- the operator's view ------------------------------------------------------------------------------------


def test_operator_sees_its_findings_without_complainant_data(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(
        client,
        session,
        headers["filer"],
        operator_id=bureaus.market.id,
        contact={"name": "李四", "phone": "13900001111"},
        weighing={"declared_g": "1000", "measured_g": "880"},
    )
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate", "substantiate"])
    page = client.get("/api/v1/me/findings", headers=headers["market"]).json()
    assert page["total"] == 1
    [finding] = page["items"]
    assert finding["case_no"] == case.case_no and finding["bureau_name"] == "西湖区市场监督管理局"
    assert finding["record_kinds"] == ["complaint_substantiated"]
    assert finding["complaint"]["category"] == "short_weight"
    assert finding["complaint"]["weighing"]["measured_g"] == "880"
    text = str(page)
    for secret in ("李四", "13900001111", bureaus.filer.username, "30.2795", "120.1052"):
        assert secret not in text
    # Staff and other roles have their own views; this one is for operator accounts.
    assert client.get("/api/v1/me/findings", headers=headers["county_a"]).status_code == 403


def test_operator_sees_only_its_own_findings(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate", "unsubstantiate"])
    assert client.get("/api/v1/me/findings", headers=headers["market"]).json()["total"] == 0
