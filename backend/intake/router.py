"""Intake API: verification institutions (Art. 15) and industry associations (Art. 16), with the associations'
membership registers (and staff's read of an operator's memberships)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile, status
from sqlmodel import col, select

from backend import audit
from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Account, Role
from backend.cases import arbitration
from backend.cases.models import ArbitrationVerification
from backend.cases.schemas import ArbitrationResultWrite, InstitutionArbitrationRead
from backend.common.schemas import Page, PageLimit, PageOffset
from backend.config import get_settings
from backend.db import SessionDep, read_only
from backend.errors import AppError, error_responses, forbidden, not_found
from backend.i18n import Locale, request_locale
from backend.instruments.models import Instrument
from backend.instruments.service import state_of
from backend.intake import jobs, memberships, reports, service, verifications
from backend.intake.csvfile import RowProblem
from backend.intake.models import (
    AssociationMembership,
    IntakeJob,
    IntakeReport,
    JobKind,
    ReportMeasure,
    VerificationSubmission,
)
from backend.intake.schemas import (
    AssociationReportCreate,
    InstrumentOperatorClassRead,
    IntakeJobRead,
    IntakeReportRead,
    JobProgress,
    MembershipCreate,
    MembershipEnd,
    MembershipImportRead,
    MembershipRead,
    MyMembershipRead,
    OperatorMembershipRead,
    RowErrorRead,
    VerificationSubmissionCreate,
    VerificationSubmissionRead,
    ViolationReportCreate,
)
from backend.media.factory import media_storage
from backend.operators.dependencies import StaffOperator
from backend.operators.models import Operator
from backend.records import rating
from backend.records.dependencies import OperatorUser
from backend.records.rules import IntegrityClass, RecordKind
from backend.records.service import bureau_today

router = APIRouter(prefix="/api/v1/intake", tags=["intake"])
#: Staff's side of the registers, under the operator like its other sub-resources.
operators_router = APIRouter(prefix="/api/v1", tags=["intake"])

_READ_ERRORS = error_responses(401, 403, 404)
_WRITE_ERRORS = error_responses(401, 403, 404, 409, 422)
_UPLOAD_ERRORS = error_responses(401, 403, 413, 415, 422)
#: A file kept for a worker goes to the media store first, which may be briefly unavailable.
_JOB_UPLOAD_ERRORS = error_responses(401, 403, 413, 415, 422, codes={503: ["storage_unavailable"]})


def _role(*roles: Role) -> Any:
    def _check(user: CurrentUser) -> Account:
        if user.role not in roles:
            raise forbidden(
                "仅限法定计量技术机构或行业组织账号", "verification institution or association accounts only"
            )
        return user

    return Depends(_check)


Institution = Annotated[Account, _role(Role.institution)]
Association = Annotated[Account, _role(Role.association)]
IntakeAccount = Annotated[Account, _role(Role.institution, Role.association)]


def _operator_class(session: SessionDep, operator_id: int) -> IntegrityClass | None:
    """The operator's current integrity class, which an institution sees for incentives and discipline
    (Art. 15(2))."""
    operator = session.get(Operator, operator_id)
    return rating.current(session, operator).cls if operator is not None else None


def _submission_read(session: SessionDep, submission: VerificationSubmission) -> VerificationSubmissionRead:
    instrument = session.get(Instrument, submission.instrument_id)
    today = bureau_today()
    state = state_of(instrument, today, get_settings().verification_due_days) if instrument else None
    return VerificationSubmissionRead.model_validate(submission).model_copy(
        update={
            "verification_state": state,
            "operator_class": _operator_class(session, submission.operator_id),
        }
    )


def _start_job(session: SessionDep, user: Account, kind: JobKind, file: UploadFile) -> IntakeJobRead:
    """Keep the upload and queue its import (the worker picks it up after the commit)."""
    job = jobs.create_job(
        session,
        account=user,
        kind=kind,
        filename=file.filename or "",
        data=_read_upload(file),
        storage=media_storage(),
    )
    return _job_read(job)


def _job_read(job: IntakeJob) -> IntakeJobRead:
    percent = round(100.0 * job.rows_done / job.total_rows, 1) if job.total_rows else 100.0
    return IntakeJobRead(
        **job.model_dump(
            include={
                "id",
                "kind",
                "state",
                "filename",
                "encoding",
                "imported",
                "duplicates",
                "rejected",
                "records_created",
                "failure",
                "created_at",
                "started_at",
                "finished_at",
            }
        ),
        progress=JobProgress(done=job.rows_done, total=job.total_rows, percent=percent),
        errors_url=f"/api/v1/intake/jobs/{job.id}/errors",
    )


def _read_upload(file: UploadFile) -> bytes:
    data = file.file.read(service.MAX_UPLOAD_BYTES + 1)
    if len(data) > service.MAX_UPLOAD_BYTES:
        raise AppError(
            413,
            "file_too_large",
            f"文件过大（上限 {service.MAX_UPLOAD_BYTES // 1024 // 1024} MB）",
            f"file larger than {service.MAX_UPLOAD_BYTES // 1024 // 1024} MB",
            {"limit_bytes": service.MAX_UPLOAD_BYTES},
        )
    return data


# --- verification institutions (Art. 15) ----------------------------------------------------------------


@router.post(
    "/verifications",
    response_model=VerificationSubmissionRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "已登记过（重复提交）/ already recorded by you"}, **_WRITE_ERRORS},
)
def submit_verification(
    session: SessionDep, user: Institution, body: VerificationSubmissionCreate, response: Response
) -> VerificationSubmissionRead:
    """Submit one verification result; a failure or an overdue instrument in use becomes a reported record."""
    item = verifications.VerificationInput(row=0, **body.model_dump())
    submission, created = verifications.submit_verification(session, account=user, item=item)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _submission_read(session, submission)


@router.post(
    "/verifications/import",
    response_model=IntakeJobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_JOB_UPLOAD_ERRORS,
)
def import_verifications(
    session: SessionDep,
    user: Institution,
    file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GB18030），中文或英文表头，至多 100,000 行")],
) -> IntakeJobRead:
    """Upload verification results as CSV; a worker imports them and reports errors per row."""
    return _start_job(session, user, JobKind.verifications, file)


@router.get("/verifications", response_model=Page[VerificationSubmissionRead], responses=_READ_ERRORS)
def list_verifications(
    session: SessionDep, user: Institution, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[VerificationSubmissionRead]:
    """Your own submitted verification results, newest first."""
    items, total = verifications.list_submissions(session, user, limit=limit, offset=offset)
    return Page(
        items=[_submission_read(session, s) for s in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/verifications/{submission_id}", response_model=VerificationSubmissionRead, responses=_READ_ERRORS
)
def get_verification(
    session: SessionDep, user: Institution, submission_id: int
) -> VerificationSubmissionRead:
    """One of your submitted verification results."""
    return _submission_read(session, verifications.get_submission(session, user, submission_id))


@router.get(
    "/instruments/{instrument_id}/operator-class",
    response_model=InstrumentOperatorClassRead,
    responses=_READ_ERRORS,
)
def instrument_operator_class(
    session: SessionDep, user: Institution, instrument_id: int
) -> InstrumentOperatorClassRead:
    """The integrity class of the operator of an instrument you have verified or are asked to verify
    (arbitration), Art. 15(2); any other instrument is 404."""
    verified = session.execute(
        select(col(VerificationSubmission.id)).where(
            col(VerificationSubmission.instrument_id) == instrument_id,
            col(VerificationSubmission.account_id) == user.id,
        )
    ).first()
    asked = session.execute(
        select(col(ArbitrationVerification.id)).where(
            col(ArbitrationVerification.instrument_id) == instrument_id,
            col(ArbitrationVerification.institution_id) == user.id,
        )
    ).first()
    instrument = session.get(Instrument, instrument_id)
    operator = session.get(Operator, instrument.operator_id) if instrument is not None else None
    if (verified is None and asked is None) or instrument is None or operator is None:
        raise not_found("计量器具", "instrument")
    current = rating.current(session, operator)
    return InstrumentOperatorClassRead(
        instrument_id=instrument_id,
        operator_id=operator.id or 0,
        operator_name=operator.name,
        operator_class=current.cls,
        as_of=current.as_of,
    )


def _arbitration_read(session: SessionDep, row: ArbitrationVerification) -> InstitutionArbitrationRead:
    instrument = session.get(Instrument, row.instrument_id)
    operator = session.get(Operator, row.operator_id)
    assert instrument is not None and operator is not None
    return InstitutionArbitrationRead(
        id=row.id or 0,
        instrument_id=row.instrument_id,
        instrument_serial=instrument.serial,
        instrument_type_code=instrument.type_code,
        operator_id=row.operator_id,
        operator_name=operator.name,
        operator_class=rating.current(session, operator).cls,
        reason=row.reason,
        ordered_at=row.ordered_at,
        result=row.result,
        certificate_no=row.certificate_no,
        verified_on=row.verified_on,
        result_notes=row.result_notes,
        result_at=row.result_at,
    )


@router.get("/arbitrations", response_model=Page[InstitutionArbitrationRead], responses=_READ_ERRORS)
def list_arbitrations(
    session: SessionDep,
    user: Institution,
    pending: bool | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[InstitutionArbitrationRead]:
    """Arbitration verifications (仲裁检定, Art. 14(3)) bureaus asked of you, newest first, with each
    operator's integrity class (Art. 15(2))."""
    rows, total = arbitration.list_for_institution(session, user, pending=pending, limit=limit, offset=offset)
    return Page(items=[_arbitration_read(session, r) for r in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/arbitrations/{arbitration_id}/result",
    response_model=InstitutionArbitrationRead,
    responses=_WRITE_ERRORS,
)
def submit_arbitration_result(
    request: Request,
    session: SessionDep,
    user: Institution,
    arbitration_id: int,
    body: ArbitrationResultWrite,
) -> InstitutionArbitrationRead:
    """Record the result of an arbitration verification asked of you: a failure substantiates the case."""
    row = arbitration.get_for_institution(session, user, arbitration_id)
    row = arbitration.record_result(
        session,
        row,
        actor=user,
        outcome=arbitration.ArbitrationOutcome(
            passed=body.passed,
            verified_on=body.verified_on,
            certificate_no=body.certificate_no,
            notes=body.notes,
        ),
        request_id=getattr(request.state, "request_id", None),
    )
    return _arbitration_read(session, row)


@router.post(
    "/violations",
    response_model=IntakeReportRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "已报告过（重复提交）/ already reported by you"}, **_WRITE_ERRORS},
)
def report_violation(
    session: SessionDep, user: Institution, body: ViolationReportCreate, response: Response
) -> IntakeReportRead:
    """Report a violation found while verifying (a cheating device…); staff verify or dismiss it."""
    instrument = None
    if body.instrument_id or body.instrument_code or body.serial:
        instrument = verifications.VerificationInput(
            row=0,
            verified_on=body.fact_date,
            passed=True,
            certificate_no="",
            instrument_id=body.instrument_id,
            instrument_code=body.instrument_code,
            serial=body.serial,
            operator_uscc=body.operator_uscc,
        )
    data = reports.ReportInput(
        measure=ReportMeasure.violation,
        kind=body.kind,
        fact_date=body.fact_date,
        summary=body.summary,
        evidence_refs=body.evidence_refs,
        reference=body.reference,
        operator_id=body.operator_id,
        operator_uscc=body.operator_uscc,
        instrument=instrument,
    )
    report, created = reports.file_report(
        session, account=user, data=data, area=service.area_path(session, user)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return IntakeReportRead.model_validate(report)


@router.post(
    "/violations/import",
    response_model=IntakeJobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_JOB_UPLOAD_ERRORS,
)
def import_violations(
    session: SessionDep,
    user: Institution,
    file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GB18030），中文或英文表头，至多 10,000 行")],
) -> IntakeJobRead:
    """Upload violations found while verifying as CSV (违法情形, 统一社会信用代码 / 器具码 / 出厂编号, 发现日期,
    情况说明, optional 证据材料 and 文书编号); a worker files each as a report pending verification and reports
    errors per row, as the single report would answer them."""
    return _start_job(session, user, JobKind.violation_reports, file)


# --- industry associations (Art. 16) ---------------------------------------------------------------------


@router.post(
    "/association-reports",
    response_model=IntakeReportRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "已报告过（重复提交）/ already reported by you"}, **_WRITE_ERRORS},
)
def report_association(
    session: SessionDep, user: Association, body: AssociationReportCreate, response: Response
) -> IntakeReportRead:
    """Report a warning (警告) or censure (通报批评) of a member operator; staff verify or dismiss it.

    The operator must have been your member on ``fact_date`` (see ``/association-memberships``), else 422
    ``not_a_member``.
    """
    data = reports.ReportInput(
        measure=body.measure,
        kind=RecordKind.ASSOCIATION_WARNING,
        fact_date=body.fact_date,
        summary=body.summary,
        evidence_refs=body.evidence_refs,
        reference=body.reference,
        operator_id=body.operator_id,
        operator_uscc=body.operator_uscc,
    )
    report, created = reports.file_report(
        session, account=user, data=data, area=service.area_path(session, user)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return IntakeReportRead.model_validate(report)


@router.post(
    "/association-reports/import",
    response_model=IntakeJobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_JOB_UPLOAD_ERRORS,
)
def import_association_reports(
    session: SessionDep,
    user: Association,
    file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GB18030），中文或英文表头，至多 10,000 行")],
) -> IntakeJobRead:
    """Upload warnings and censures as CSV; a worker files them and reports errors per row (a row about an
    operator that was not your member on its date gets ``not_a_member``)."""
    return _start_job(session, user, JobKind.association_reports, file)


# --- associations' membership registers (Art. 16) -----------------------------------------------------------


def _membership_read(membership: AssociationMembership, uscc: str, name: str) -> MembershipRead:
    return MembershipRead(
        **membership.model_dump(
            include={
                "id",
                "operator_id",
                "member_number",
                "joined_on",
                "ended_on",
                "end_reason",
                "created_at",
                "updated_at",
            }
        ),
        operator_uscc=uscc,
        operator_name=name,
        current=membership.ended_on is None,
    )


def _own_membership_read(session: SessionDep, membership: AssociationMembership) -> MembershipRead:
    operator = session.get(Operator, membership.operator_id)
    assert operator is not None  # a foreign key
    return _membership_read(membership, operator.uscc, operator.name)


def _row_error(p: RowProblem, locale: Locale) -> RowErrorRead:
    return RowErrorRead(
        row=p.row,
        column=p.column,
        code=p.code,
        message=p.message_zh if locale == "zh-CN" else p.message_en,
        message_zh=p.message_zh,
        message_en=p.message_en,
    )


@router.get("/association-memberships", response_model=Page[MembershipRead], responses=_READ_ERRORS)
@read_only
def list_memberships(
    session: SessionDep,
    user: Association,
    status: Annotated[
        memberships.MembershipStatus | None, Query(description="current 在册 / ended 已退会")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="经营者名称或统一社会信用代码（前缀）/ name or code")
    ] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[MembershipRead]:
    """Your register of members, newest first; filter current or former members, search by name or code."""
    rows, total = memberships.list_own(session, user, status=status, q=q, limit=limit, offset=offset)
    return Page(
        items=[_membership_read(m, uscc, name) for m, uscc, name in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/association-memberships",
    response_model=MembershipRead,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
)
def add_membership(session: SessionDep, user: Association, body: MembershipCreate) -> MembershipRead:
    """Register a current member by its code: an active operator within your area; 409 if already a member."""
    data = memberships.MembershipInput(
        operator_uscc=body.operator_uscc, joined_on=body.joined_on, member_number=body.member_number
    )
    return _own_membership_read(session, memberships.add(session, account=user, data=data))


@router.post(
    "/association-memberships/import",
    response_model=MembershipImportRead,
    responses=_UPLOAD_ERRORS,
)
def import_memberships(
    request: Request,
    session: SessionDep,
    user: Association,
    file: Annotated[
        UploadFile,
        File(
            description="CSV（UTF-8 或 GB18030），中文或英文表头，至多 10,000 行："
            "统一社会信用代码、入会日期，可选 会员编号、退会日期、退会原因"
        ),
    ],
) -> MembershipImportRead:
    """Import members from CSV at once: the good rows are added, the others reported row by row."""
    outcome = memberships.import_csv(
        session, account=user, data=_read_upload(file), filename=file.filename or ""
    )
    locale = request_locale(request)
    return MembershipImportRead(
        encoding=outcome.encoding,
        total=outcome.total,
        imported=outcome.imported,
        duplicates=outcome.duplicates,
        rejected=outcome.rejected,
        errors=[_row_error(p, locale) for p in outcome.problems],
    )


@router.get("/association-memberships/{membership_id}", response_model=MembershipRead, responses=_READ_ERRORS)
@read_only
def get_membership(session: SessionDep, user: Association, membership_id: int) -> MembershipRead:
    """One membership of your register."""
    return _own_membership_read(session, memberships.get_own(session, user, membership_id))


@router.post(
    "/association-memberships/{membership_id}/end",
    response_model=MembershipRead,
    responses=_WRITE_ERRORS,
)
def end_membership(
    session: SessionDep, user: Association, membership_id: int, body: MembershipEnd
) -> MembershipRead:
    """End a current membership; its last day may not precede a warning or censure you filed about it."""
    membership = memberships.end(
        session, account=user, membership_id=membership_id, ended_on=body.ended_on, reason=body.reason
    )
    return _own_membership_read(session, membership)


@operators_router.get(
    "/operators/{operator_id}/association-memberships",
    response_model=Page[OperatorMembershipRead],
    responses=_READ_ERRORS,
)
def list_operator_memberships(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    operator: StaffOperator,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[OperatorMembershipRead]:
    """The operator's memberships of industry associations (staff in scope); audited, as they are not public."""
    rows, total = memberships.list_of_operator(session, operator.id or 0, limit=limit, offset=offset)
    audit.service.record_read(
        session,
        actor=scope.user,
        action="association_membership.read",
        entity_type="operator",
        entity_id=operator.id or 0,
        after={"membership_ids": [m.id for m, _a in rows]},
        request_id=getattr(request.state, "request_id", None),
    )
    items = [
        OperatorMembershipRead(
            **m.model_dump(
                include={
                    "id",
                    "association_id",
                    "member_number",
                    "joined_on",
                    "ended_on",
                    "end_reason",
                    "created_at",
                    "updated_at",
                }
            ),
            association_name=service.organisation_of(a),
            current=m.ended_on is None,
        )
        for m, a in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


@operators_router.get(
    "/me/association-memberships", response_model=Page[MyMembershipRead], responses=_READ_ERRORS
)
@read_only
def my_memberships(
    session: SessionDep, user: OperatorUser, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[MyMembershipRead]:
    """Which industry associations register you as a member, and since when (operator users): a register
    that is wrong lets an association report on you, so you can see it and ask the association to correct it."""
    rows, total = memberships.list_of_operator(session, user.operator_id or 0, limit=limit, offset=offset)
    items = [
        MyMembershipRead(
            id=m.id or 0,
            association_name=service.organisation_of(a),
            member_number=m.member_number,
            joined_on=m.joined_on,
            ended_on=m.ended_on,
            end_reason=m.end_reason,
            current=m.ended_on is None,
        )
        for m, a in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


# --- both: reports and jobs ------------------------------------------------------------------------------


@router.get("/reports", response_model=Page[IntakeReportRead], responses=_READ_ERRORS)
def list_reports(
    session: SessionDep, user: IntakeAccount, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[IntakeReportRead]:
    """Your own violation reports or association reports, newest first."""
    items, total = reports.list_reports(session, user, limit=limit, offset=offset)
    return Page(
        items=[IntakeReportRead.model_validate(r) for r in items], total=total, limit=limit, offset=offset
    )


@router.get("/reports/{report_id}", response_model=IntakeReportRead, responses=_READ_ERRORS)
def get_report(session: SessionDep, user: IntakeAccount, report_id: int) -> IntakeReportRead:
    """One of your reports."""
    report: IntakeReport = reports.get_report(session, user, report_id)
    return IntakeReportRead.model_validate(report)


@router.get("/jobs", response_model=Page[IntakeJobRead], responses=_READ_ERRORS)
def list_jobs(
    session: SessionDep, user: IntakeAccount, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[IntakeJobRead]:
    """Your own CSV jobs, newest first."""
    items, total = jobs.list_jobs(session, user, limit=limit, offset=offset)
    return Page(items=[_job_read(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=IntakeJobRead, responses=_READ_ERRORS)
def get_job(session: SessionDep, user: IntakeAccount, job_id: int) -> IntakeJobRead:
    """A job's state, progress (rows done of the total) and counts."""
    return _job_read(jobs.get_job(session, user, job_id))


@router.get(
    "/jobs/{job_id}/errors",
    response_model=Page[RowErrorRead],
    responses={200: {"content": {"text/csv": {}}}, **_READ_ERRORS},
)
def get_job_errors(
    request: Request,
    session: SessionDep,
    user: IntakeAccount,
    job_id: int,
    format: Annotated[Literal["json", "csv"] | None, Query(description="csv：下载错误报告")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: PageOffset = 0,
) -> Page[RowErrorRead] | Response:
    """The row-level error report: JSON pages, or the whole report as CSV (``?format=csv`` or Accept: text/csv)."""
    job = jobs.get_job(session, user, job_id)
    locale = request_locale(request)
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if as_csv:
        return Response(
            content=jobs.errors_csv(session, job),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="intake-job-{job.id}-errors.csv"'},
        )
    errors, total = jobs.row_errors(session, job.id or 0, limit=limit, offset=offset)
    items = [
        RowErrorRead(
            row=e.row_number,
            column=e.column_name,
            code=e.code,
            message=e.message_zh if locale == "zh-CN" else e.message_en,
            message_zh=e.message_zh,
            message_en=e.message_en,
        )
        for e in errors
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)
