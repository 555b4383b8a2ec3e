"""Reports (Art. 15-16): institutions' violations, associations' warnings and censures about members."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import snapshot
from backend.auth.models import Account
from backend.errors import AppError, not_found
from backend.intake import csvfile
from backend.intake.csvfile import RowProblem, problem
from backend.intake.models import AssociationMembership, IntakeReport, ReportMeasure
from backend.intake.service import (
    MEASURE_LABELS,
    MEASURE_WORDS,
    VIOLATION_KIND_WORDS,
    VIOLATION_KINDS,
    organisation_of,
)
from backend.intake.verifications import VerificationInput, resolve_instruments
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.records import service as records
from backend.records.models import RecordSource
from backend.records.rules import RecordKind, RecordState

# --- reports: institutions' violations, associations' warnings and censures ---------------------------------


@dataclass
class ReportInput:
    """One report, parsed."""

    measure: ReportMeasure
    kind: RecordKind
    fact_date: date
    summary: str
    evidence_refs: list[str]
    reference: str | None = None
    operator_id: int | None = None
    operator_uscc: str | None = None
    instrument: VerificationInput | None = None  # identifiers only, for a violation about an instrument
    row: int | None = None


def operator_in_area(
    session: Session, area: str, *, operator_id: int | None = None, uscc: str | None = None
) -> Operator | None:
    """The operator (by id, else by code) if its division lies in ``area``; None if unknown or outside."""
    stmt = select(Operator, col(Jurisdiction.path)).join(
        Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code)
    )
    if operator_id is not None:
        stmt = stmt.where(col(Operator.id) == operator_id)
    else:
        stmt = stmt.where(col(Operator.uscc) == (uscc or "").upper())
    row = session.execute(stmt).first()
    if row is None or not row[1].startswith(area):
        return None
    operator: Operator = row[0]
    return operator


def was_member(session: Session, association_id: int, operator_id: int, day: date) -> bool:
    """Whether a membership period of the association covers ``day`` (its last day included).

    The matching row is locked: ending that membership concurrently waits for this report, then sees it (and
    refuses an end before it); a report after the end committed re-reads the row and is refused.
    """
    stmt = (
        select(col(AssociationMembership.id))
        .where(
            col(AssociationMembership.association_id) == association_id,
            col(AssociationMembership.operator_id) == operator_id,
            col(AssociationMembership.joined_on) <= day,
            or_(col(AssociationMembership.ended_on).is_(None), col(AssociationMembership.ended_on) >= day),
        )
        .limit(1)
        .with_for_update()
    )
    return session.execute(stmt).first() is not None


def file_report(
    session: Session, *, account: Account, data: ReportInput, area: str, job_id: int | None = None
) -> tuple[IntakeReport, bool]:
    """File a report as a reported integrity record: (report, created); the same report again returns the first.

    Problems raise AppError (422, or 404 for an operator or instrument outside the area).
    """
    if data.fact_date > records.bureau_today():
        raise AppError(
            422,
            "fact_date_in_future",
            "日期不能晚于今天",
            "the date is in the future",
            {"column": "fact_date"},
        )
    if data.measure is ReportMeasure.violation and data.kind not in VIOLATION_KINDS:
        raise AppError(
            422,
            "kind_not_reportable",
            "法定计量技术机构不能报告该类记录",
            "verification institutions cannot report this kind of record",
            {"kind": data.kind.value, "allowed": sorted(k.value for k in VIOLATION_KINDS)},
        )
    instrument_id: int | None = None
    operator: Operator | None = None
    if data.instrument is not None:
        found, problems = resolve_instruments(session, [data.instrument], area)
        if problems:
            first = problems[0]
            status = 404 if first.code == "unknown_instrument" else 422
            raise AppError(status, first.code, first.message_zh, first.message_en, {"column": first.column})
        inst = found[data.instrument.row]
        instrument_id = inst.id
        operator = session.get(Operator, inst.operator_id)
        if (data.operator_id is not None and data.operator_id != inst.operator_id) or (
            data.operator_uscc is not None and data.operator_uscc.upper() != inst.uscc
        ):
            raise AppError(
                422,
                "instrument_not_of_operator",
                "该计量器具不属于此经营者",
                "the instrument does not belong to this operator",
            )
    elif data.operator_id is not None or data.operator_uscc is not None:
        operator = operator_in_area(session, area, operator_id=data.operator_id, uscc=data.operator_uscc)
    if operator is None:
        raise AppError(
            404, "unknown_operator", *csvfile.MESSAGES["unknown_operator"], {"column": "operator_uscc"}
        )
    # Art. 16: an association sanctions its members; a report about anyone else is not its to make.
    if data.measure is not ReportMeasure.violation and not was_member(
        session, account.id or 0, operator.id or 0, data.fact_date
    ):
        day = data.fact_date.isoformat()
        refused = problem(0, "operator_uscc", "not_a_member", day)
        raise AppError(
            422,
            "not_a_member",
            refused.message_zh,
            refused.message_en,
            {"column": "operator_uscc", "operator_id": operator.id, "fact_date": day},
        )
    identity = "|".join(
        [
            str(account.id),
            data.measure.value,
            data.kind.value,
            str(operator.id),
            str(instrument_id or ""),
            data.fact_date.isoformat(),
            data.reference or data.summary,
        ]
    )
    dedupe_key = hashlib.sha256(identity.encode()).hexdigest()
    existing = session.execute(
        select(IntakeReport).where(col(IntakeReport.dedupe_key) == dedupe_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    evidence = list(data.evidence_refs)
    if data.reference and data.reference not in evidence:
        evidence.insert(0, data.reference)
    source = RecordSource.institution if data.measure is ReportMeasure.violation else RecordSource.association
    record = records.create(
        session,
        operator=operator,
        kind=data.kind,
        fact_date=data.fact_date,
        source=source,
        source_ref=f"intake:{dedupe_key}",
        state=RecordState.REPORTED,
        summary=f"【{MEASURE_LABELS[data.measure]}】{organisation_of(account)}：{data.summary}",
        evidence_refs=evidence[:20],
        instrument_id=instrument_id,
        actor=account,
        reason=(
            "法定计量技术机构通报 / reported by a verification institution"
            if source is RecordSource.institution
            else "行业组织通报 / reported by an industry association"
        ),
    )
    report = IntakeReport(
        account_id=account.id or 0,
        job_id=job_id,
        row_number=data.row if job_id is not None else None,
        measure=data.measure,
        kind=data.kind,
        operator_id=operator.id or 0,
        instrument_id=instrument_id,
        fact_date=data.fact_date,
        summary=data.summary,
        evidence_refs=list(data.evidence_refs),
        reference=data.reference,
        record_id=record.id or 0,
        dedupe_key=dedupe_key,
    )
    session.add(report)
    session.flush()
    audit.service.record(
        session,
        actor=account,
        action=f"intake.{data.measure.value}",
        entity_type="intake_report",
        entity_id=report.id or 0,
        after=snapshot(report),
    )
    return report, True


def get_report(session: Session, account: Account, report_id: int) -> IntakeReport:
    """One of the account's own reports; 404 for anyone else's."""
    report = session.get(IntakeReport, report_id)
    if report is None or report.account_id != account.id:
        raise not_found("报告", "report")
    return report


def list_reports(
    session: Session, account: Account, *, limit: int, offset: int
) -> tuple[Sequence[IntakeReport], int]:
    """The account's own reports, newest first."""
    where = col(IntakeReport.account_id) == account.id
    total = session.execute(select(func.count()).select_from(IntakeReport).where(where)).scalar_one()
    items = (
        session.execute(
            select(IntakeReport)
            .where(where)
            .order_by(col(IntakeReport.id).desc())
            .limit(limit)
            .offset(offset)
        )
        .scalars()
        .all()
    )
    return items, total


def _report_cells(
    number: int, raw: dict[str, str], problems: list[RowProblem]
) -> tuple[date | None, str, list[str], str | None]:
    """The cells every report row has: its date, summary, evidence references and reference number."""
    for column in ("fact_date", "summary"):
        if not raw.get(column):
            problems.append(problem(number, column, "missing_value"))
    fact_date: date | None = None
    if raw.get("fact_date"):
        try:
            fact_date = csvfile.parse_date(raw["fact_date"])
        except ValueError:
            problems.append(problem(number, "fact_date", "invalid_date", raw["fact_date"]))
    summary = raw.get("summary", "")
    if len(summary) > 2000:
        problems.append(problem(number, "summary", "value_too_long", limit=2000))
    reference = raw.get("reference", "") or None
    if reference is not None and len(reference) > 100:
        problems.append(problem(number, "reference", "value_too_long", limit=100))
    refs = [r.strip() for r in raw.get("evidence_refs", "").replace("；", ";").replace("|", ";").split(";")]
    refs = [r for r in refs if r]
    if len(refs) > 20:
        problems.append(problem(number, "evidence_refs", "too_many_evidence_refs", limit=20))
    if any(len(r) > 200 for r in refs):
        problems.append(problem(number, "evidence_refs", "value_too_long", limit=200))
    return fact_date, summary, refs, reference


def parse_association_row(number: int, raw: dict[str, str]) -> ReportInput | list[RowProblem]:
    """A CSV row of an association's file as a ReportInput, or its problems."""
    problems: list[RowProblem] = csvfile.control_characters(number, raw)
    for column in ("operator_uscc", "measure"):
        if not raw.get(column):
            problems.append(problem(number, column, "missing_value"))
    measure = MEASURE_WORDS.get(raw.get("measure", "").lower())
    if raw.get("measure") and measure is None:
        problems.append(problem(number, "measure", "invalid_measure", raw["measure"]))
    fact_date, summary, refs, reference = _report_cells(number, raw, problems)
    if problems or measure is None or fact_date is None:
        return problems
    return ReportInput(
        measure=measure,
        kind=RecordKind.ASSOCIATION_WARNING,
        fact_date=fact_date,
        summary=summary,
        evidence_refs=refs,
        reference=reference,
        operator_uscc=raw["operator_uscc"].upper(),
        row=number,
    )


def parse_violation_row(number: int, raw: dict[str, str]) -> ReportInput | list[RowProblem]:
    """A CSV row of an institution's violation reports as a ReportInput, or its problems."""
    problems: list[RowProblem] = csvfile.control_characters(number, raw)
    if not raw.get("kind"):
        problems.append(problem(number, "kind", "missing_value"))
    kind = VIOLATION_KIND_WORDS.get(raw.get("kind", "").lower())
    if raw.get("kind") and kind is None:
        problems.append(problem(number, "kind", "invalid_violation_kind", raw["kind"]))
    uscc = raw.get("operator_uscc", "").upper() or None
    code = raw.get("instrument_code", "") or None
    serial = raw.get("serial", "") or None
    if not (uscc or code or serial):
        problems.append(problem(number, None, "missing_operator_or_instrument"))
    for column, limit in (("operator_uscc", 40), ("instrument_code", 300), ("serial", 64)):
        if len(raw.get(column, "")) > limit:
            problems.append(problem(number, column, "value_too_long", limit=limit))
    fact_date, summary, refs, reference = _report_cells(number, raw, problems)
    if problems or kind is None or fact_date is None:
        return problems
    instrument = None
    if code or serial:
        # The same lookup as a verification result's (by code, or by serial within the operator).
        instrument = VerificationInput(
            row=number,
            verified_on=fact_date,
            passed=True,
            certificate_no="",
            instrument_code=code,
            serial=serial,
            operator_uscc=uscc,
        )
    return ReportInput(
        measure=ReportMeasure.violation,
        kind=kind,
        fact_date=fact_date,
        summary=summary,
        evidence_refs=refs,
        reference=reference,
        operator_uscc=uscc,
        instrument=instrument,
        row=number,
    )
