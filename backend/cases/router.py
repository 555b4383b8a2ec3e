"""Case endpoints for bureau staff (the work list, each step of handling, transfers) and the operator's
substantiated findings."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from backend import audit
from backend.auth.dependencies import StaffScope
from backend.auth.models import Account
from backend.cases import arbitration, figures, repository, service
from backend.cases.dependencies import StaffCase
from backend.cases.models import CaseKind, CaseState, RejectionReason
from backend.cases.schemas import (
    ArbitrationOrder,
    ArbitrationRead,
    ArbitrationResultWrite,
    CaseClose,
    CaseDeadlineExtend,
    CaseDeadlinePause,
    CaseDetail,
    CaseFindings,
    CaseMediate,
    CaseNote,
    CaseOperatorNotified,
    CaseRead,
    CaseReject,
    CaseReopen,
    CaseSubstantiate,
    CaseSummary,
    CaseTransfer,
    DeadlineFigureRead,
    DeadlineRuleRead,
    DeadlineRuleWrite,
    HandledByOption,
    OperatorFinding,
    RejectionReasonRead,
    TransferRead,
)
from backend.common.schemas import Page, PageLimit, PageOffset
from backend.db import SessionDep
from backend.errors import error_responses, not_found
from backend.i18n import request_locale
from backend.jurisdictions.models import Jurisdiction
from backend.records.dependencies import OperatorUser

router = APIRouter(prefix="/api/v1", tags=["cases"])

_ERRORS = error_responses(401, 403, 404)
_LIST_ERRORS = error_responses(401, 403, 422)
_STEP_ERRORS = {**_ERRORS, **error_responses(409, 422)}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _page(items: list[CaseSummary], total: int, limit: int, offset: int) -> Page[CaseSummary]:
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/cases", response_model=Page[CaseSummary], responses=_LIST_ERRORS)
def list_cases(
    session: SessionDep,
    scope: StaffScope,
    status: CaseState | None = None,
    overdue: bool | None = None,
    escalated: bool | None = None,
    jurisdiction: str | None = None,
    kind: CaseKind | None = None,
    triage: bool | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[CaseSummary]:
    """Cases in your jurisdiction and below, newest first (``jurisdiction`` narrows to a division's subtree)."""
    flt = repository.CaseFilter(
        state=status,
        overdue=overdue,
        escalated=escalated,
        jurisdiction=jurisdiction,
        kind=kind,
        triage=triage,
    )
    items, total = repository.list_in_scope(session, scope, flt, limit=limit, offset=offset)
    return _page(items, total, limit, offset)


@router.get("/cases/overdue", response_model=Page[CaseSummary], responses=_LIST_ERRORS)
def overdue_cases(
    session: SessionDep,
    scope: StaffScope,
    escalated: bool | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[CaseSummary]:
    """Cases in your jurisdiction past a statutory deadline, the longest overdue first."""
    flt = repository.CaseFilter(overdue=True, escalated=escalated)
    items, total = repository.list_in_scope(session, scope, flt, limit=limit, offset=offset, order="due")
    return _page(items, total, limit, offset)


@router.get("/cases/transfers", response_model=Page[TransferRead], responses=_ERRORS)
def case_transfers(
    session: SessionDep, scope: StaffScope, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[TransferRead]:
    """Transfers into, out of and within your jurisdiction, newest first."""
    items, total = repository.transfers_in_scope(session, scope, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/cases/rejection-reasons", response_model=list[RejectionReasonRead], responses=_ERRORS)
def rejection_reasons(request: Request, scope: StaffScope) -> list[RejectionReasonRead]:
    """The reasons for not accepting a complaint (不予受理, Order No. 20 Art. 15), labelled in your language."""
    zh = request_locale(request) == "zh-CN"
    return [
        RejectionReasonRead(
            reason=reason,
            label=label[0] if zh else label[1],
            handled_by=[HandledByOption(handled_by=b, label=t[0] if zh else t[1]) for b, t in bodies],
            cites_case=reason is RejectionReason.duplicate,
        )
        for reason, label, bodies in service.rejection_reasons()
    ]


@router.get("/cases/{case_id}", response_model=CaseDetail, responses=_ERRORS)
def get_case(request: Request, session: SessionDep, scope: StaffScope, case: StaffCase) -> CaseDetail:
    """A case with the complaint's evidence, the filer's identity and the full history; audited (Art. 20)."""
    audit.service.record_read(
        session,
        actor=scope.user,
        action="case.read",
        entity_type="case",
        entity_id=case.id or 0,
        request_id=_request_id(request),
    )
    return repository.to_detail(session, case, request_locale(request))


@router.post("/cases/{case_id}/accept", response_model=CaseRead, responses=_STEP_ERRORS)
def accept_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseNote | None = None
) -> CaseRead:
    """Accept the case (受理); for a complaint the 45 working days of handling begin."""
    note = body.note if body is not None else ""
    case = service.accept(session, case, actor=scope.user, note=note, request_id=_request_id(request))
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/reject", response_model=CaseRead, responses=_STEP_ERRORS)
def reject_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseReject
) -> CaseRead:
    """Decide not to accept (不予受理) for a listed reason; the filer is told."""
    case = service.reject(
        session,
        case,
        actor=scope.user,
        scope=scope,
        reason=body.reason,
        handled_by=body.handled_by,
        duplicate_of_case_id=body.duplicate_of_case_id,
        note=body.note,
        request_id=_request_id(request),
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/investigate", response_model=CaseRead, responses=_STEP_ERRORS)
def investigate_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseNote | None = None
) -> CaseRead:
    """Start investigating an accepted case (调查核实)."""
    note = body.note if body is not None else ""
    case = service.investigate(session, case, actor=scope.user, note=note, request_id=_request_id(request))
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/substantiate", response_model=CaseRead, responses=_STEP_ERRORS)
def substantiate_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseSubstantiate
) -> CaseRead:
    """Find the complaint true: verified integrity records are made and the operator re-rated (Art. 8, 13)."""
    data = service.Substantiation(
        findings=body.findings,
        fact_date=body.fact_date,
        operator_id=body.operator_id,
        record_kinds=tuple(body.record_kinds),
        instrument_id=body.instrument_id,
        instrument_still_in_use=body.instrument_still_in_use,
        evidence_refs=tuple(body.evidence_refs),
    )
    case = service.substantiate(
        session, case, actor=scope.user, scope=scope, data=data, request_id=_request_id(request)
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/unsubstantiate", response_model=CaseRead, responses=_STEP_ERRORS)
def unsubstantiate_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseFindings
) -> CaseRead:
    """Find the complaint not true; records an earlier substantiation made are revoked."""
    case = service.unsubstantiate(
        session, case, actor=scope.user, findings=body.findings, request_id=_request_id(request)
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/mediate", response_model=CaseRead, responses=_STEP_ERRORS)
def mediate_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseMediate
) -> CaseRead:
    """Record the mediation agreement between the consumer and the operator (complaints only)."""
    case = service.mediate(
        session, case, actor=scope.user, agreement=body.agreement, request_id=_request_id(request)
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/close", response_model=CaseRead, responses=_STEP_ERRORS)
def close_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseClose | None = None
) -> CaseRead:
    """Close the case (办结); before a finding this terminates the handling and needs a reason."""
    reason = body.reason if body is not None else ""
    case = service.close(session, case, actor=scope.user, reason=reason, request_id=_request_id(request))
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/operator-notified", response_model=CaseRead, responses=_STEP_ERRORS)
def case_operator_notified(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseOperatorNotified
) -> CaseRead:
    """Record how an operator without the app was told that mediation was terminated (Order No. 20 Art. 21):
    meets the 7-working-day deadline the termination opened; 409 ``no_notice_due`` when none is open."""
    case = service.operator_notified(
        session, case, actor=scope.user, method=body.method, note=body.note, request_id=_request_id(request)
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/deadlines/extend", response_model=CaseRead, responses=_STEP_ERRORS)
def extend_case_deadline(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseDeadlineExtend
) -> CaseRead:
    """Extend a running deadline once by what its basis allows (a tip-off's case-filing decision: 15 working
    days with the bureau head's approval, named in ``reason``); on the case history and audited."""
    case = service.extend_deadline(
        session, case, actor=scope.user, reason=body.reason, key=body.key, request_id=_request_id(request)
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/deadlines/pause", response_model=CaseRead, responses=_STEP_ERRORS)
def pause_case_deadline(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseDeadlinePause
) -> CaseRead:
    """Leave testing, inspection, quarantine or appraisal time out of a running pausable deadline (a tip-off's
    case-filing decision): the due date moves by the working days in it; on the case history and audited."""
    case = service.pause_deadline(
        session,
        case,
        actor=scope.user,
        first_day=body.first_day,
        last_day=body.last_day,
        cause=body.cause,
        reason=body.reason,
        key=body.key,
        request_id=_request_id(request),
    )
    return repository.to_read(session, case, request_locale(request))


@router.post(
    "/cases/{case_id}/arbitrations", response_model=ArbitrationRead, status_code=201, responses=_STEP_ERRORS
)
def order_arbitration(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: ArbitrationOrder
) -> ArbitrationRead:
    """Order an arbitration verification (仲裁检定, Art. 14(3)) of the operator's instrument from a verification
    institution; until its result no finding can be made, and a failed result substantiates the case."""
    row = arbitration.order(
        session,
        case,
        actor=scope.user,
        instrument_id=body.instrument_id,
        institution_id=body.institution_id,
        reason=body.reason,
        request_id=_request_id(request),
    )
    return ArbitrationRead.model_validate(row)


@router.get("/cases/{case_id}/arbitrations", response_model=list[ArbitrationRead], responses=_ERRORS)
def case_arbitrations(session: SessionDep, scope: StaffScope, case: StaffCase) -> list[ArbitrationRead]:
    """The case's arbitration verifications, oldest first."""
    return [ArbitrationRead.model_validate(a) for a in arbitration.for_case(session, case.id or 0)]


@router.post(
    "/cases/{case_id}/arbitrations/{arbitration_id}/result",
    response_model=ArbitrationRead,
    responses=_STEP_ERRORS,
)
def record_arbitration_result(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    case: StaffCase,
    arbitration_id: int,
    body: ArbitrationResultWrite,
) -> ArbitrationRead:
    """Record the institution's result on its behalf (a paper certificate); a failure substantiates the case
    with an ``instrument_failed_verification`` record, a pass leaves staff to find it unsubstantiated."""
    row = arbitration.get_for_case(session, case, arbitration_id)
    row = arbitration.record_result(
        session,
        row,
        actor=scope.user,
        outcome=arbitration.ArbitrationOutcome(
            passed=body.passed,
            verified_on=body.verified_on,
            certificate_no=body.certificate_no,
            notes=body.notes,
        ),
        request_id=_request_id(request),
    )
    return ArbitrationRead.model_validate(row)


@router.post("/cases/{case_id}/reopen", response_model=CaseRead, responses=_STEP_ERRORS)
def reopen_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseReopen
) -> CaseRead:
    """Reopen a decided or closed case with a reason."""
    case = service.reopen(
        session, case, actor=scope.user, reason=body.reason, request_id=_request_id(request)
    )
    return repository.to_read(session, case, request_locale(request))


@router.post("/cases/{case_id}/transfer", response_model=CaseRead, responses=_STEP_ERRORS)
def transfer_case(
    request: Request, session: SessionDep, scope: StaffScope, case: StaffCase, body: CaseTransfer
) -> CaseRead:
    """Transfer the case to another bureau (移送), which decides on acceptance afresh; both keep the record."""
    case = service.transfer(
        session,
        case,
        actor=scope.user,
        jurisdiction_code=body.jurisdiction_code,
        reason=body.reason,
        request_id=_request_id(request),
    )
    return repository.to_read(session, case, request_locale(request))


@router.get("/me/findings", response_model=Page[OperatorFinding], tags=["me"], responses=_ERRORS)
def my_findings(
    request: Request, session: SessionDep, user: OperatorUser, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[OperatorFinding]:
    """Complaints found true against your business, with the records they made (no complainant data)."""
    items, total = repository.findings_for_operator(
        session, user.operator_id or 0, request_locale(request), limit=limit, offset=offset
    )
    return Page(items=items, total=total, limit=limit, offset=offset)


# ---- deadline figures per deployment and bureau -----------------------------------------------------------


def _figure(item: figures.Effective, zh: bool) -> DeadlineFigureRead:
    spec = item.spec
    superseded = spec.basis_in_force_until is not None
    return DeadlineFigureRead(
        key=spec.key,
        working_days=spec.working_days,
        extension_working_days=spec.extension_working_days,
        pausable=spec.pausable,
        legal_basis=spec.legal_basis_zh if zh else spec.legal_basis_en,
        basis_source=item.source,
        rule_jurisdiction=item.rule_jurisdiction,
        basis_superseded=superseded,
    )


def _jurisdiction_in_scope(session: SessionDep, scope: StaffScope, code: str) -> Jurisdiction:
    jurisdiction = session.get(Jurisdiction, code)
    if jurisdiction is None or not scope.covers(jurisdiction.path):
        raise not_found("辖区", "jurisdiction")
    return jurisdiction


@router.get("/deadline-figures", response_model=list[DeadlineFigureRead], responses=_LIST_ERRORS)
def deadline_figures(
    request: Request, session: SessionDep, scope: StaffScope, jurisdiction: str | None = None
) -> list[DeadlineFigureRead]:
    """Every deadline as it applies in ``jurisdiction`` (yours when omitted): figure, basis and its source."""
    code = jurisdiction or (scope.user.jurisdiction_code if isinstance(scope.user, Account) else None)
    if code is not None:
        _jurisdiction_in_scope(session, scope, code)
    zh = request_locale(request) == "zh-CN"
    return [_figure(item, zh) for item in figures.effective_all(session, code)]


@router.get("/jurisdictions/{code}/deadline-rules", response_model=list[DeadlineRuleRead], responses=_ERRORS)
def list_deadline_rules(session: SessionDep, scope: StaffScope, code: str) -> list[DeadlineRuleRead]:
    """A bureau's own deadline figures (in your jurisdiction or below)."""
    jurisdiction = _jurisdiction_in_scope(session, scope, code)
    return [DeadlineRuleRead.model_validate(r) for r in figures.rules_of(session, jurisdiction.code)]


@router.put(
    "/jurisdictions/{code}/deadline-rules/{key}", response_model=DeadlineRuleRead, responses=_STEP_ERRORS
)
def put_deadline_rule(
    session: SessionDep, scope: StaffScope, code: str, key: str, body: DeadlineRuleWrite
) -> DeadlineRuleRead:
    """Set a bureau's own figure for a deadline, for its jurisdiction and below; deadlines opened from now on
    use it (running ones keep theirs). Audited."""
    jurisdiction = _jurisdiction_in_scope(session, scope, code)
    row = figures.set_rule(
        session,
        jurisdiction=jurisdiction,
        key=key,
        working_days=body.working_days,
        extension_working_days=body.extension_working_days,
        legal_basis_zh=body.legal_basis_zh,
        legal_basis_en=body.legal_basis_en,
        actor=scope.user,
    )
    return DeadlineRuleRead.model_validate(row)


@router.delete("/jurisdictions/{code}/deadline-rules/{key}", status_code=204, responses=_STEP_ERRORS)
def delete_deadline_rule(session: SessionDep, scope: StaffScope, code: str, key: str) -> Response:
    """Remove a bureau's own figure: the deployment's (or the law's) applies again. Audited."""
    jurisdiction = _jurisdiction_in_scope(session, scope, code)
    figures.delete_rule(session, jurisdiction=jurisdiction, key=key, actor=scope.user)
    return Response(status_code=204)
