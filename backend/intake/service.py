"""Intake of verification results (Art. 15) and association reports (Art. 16), single or as CSV jobs.

A verification result is stored as a ``VerificationRecord`` (the instrument's history), mirrored into the
instrument's current state when it is the newest, and kept as a ``VerificationSubmission`` (who submitted it,
from which file row, with the notes); the pair (instrument, certificate number) is recorded once, so uploading a
file again changes nothing. A failed verification, and an instrument found past its validity yet still in use,
become integrity records in state ``reported``: Art. 15(1) has institutions report (通报) to the bureau, and
Art. 13 counts a fact only "after investigation and verification", which is the bureau's, not the institution's.

An association's warning or censure is accepted only about an operator that was its member on the fact date
(the registers are ``backend.intake.memberships``); anything else is refused with ``not_a_member``.

Rows are written set-based: one lookup per chunk for instruments, certificates and earlier findings, then
``bulk_insert`` (COPY on PostgreSQL) and one audit append per chunk.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, func, or_, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, AuditItem, record_many, snapshot
from backend.auth.models import Account, Role
from backend.db import bulk_insert, iso_utc, session_scope, table_of, utcnow
from backend.errors import AppError, conflict, forbidden, not_found
from backend.instruments.models import Instrument, InstrumentStatus, VerificationRecord
from backend.instruments.service import default_valid_until
from backend.intake import csvfile
from backend.intake.csvfile import RowProblem, problem
from backend.intake.models import (
    AssociationMembership,
    IntakeJob,
    IntakeReport,
    IntakeRowError,
    JobKind,
    JobState,
    ReportMeasure,
    VerificationSubmission,
)
from backend.jurisdictions.models import Jurisdiction
from backend.media.storage import MediaStorage, put_content_addressed
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.public import store as public_store
from backend.qr.service import key_ring
from backend.qr.tokens import ForgedQR, SubjectKind
from backend.records import service as records
from backend.records.models import IntegrityRecord, IntegrityRecordVersion, RecordChange, RecordSource
from backend.records.rules import RecordKind, RecordState

MAX_ROWS = 100_000
MAX_ASSOCIATION_ROWS = 10_000
MAX_VIOLATION_ROWS = 10_000
MAX_UPLOAD_BYTES = 40 * 1024 * 1024
CHUNK = 10_000

#: What a technical institution can find while verifying or testing (Art. 15(1)); inspections, penalties,
#: complaints and commitments are the bureau's own findings, sanctions the associations'.
VIOLATION_KINDS: frozenset[RecordKind] = frozenset(
    {
        RecordKind.METROLOGY_CHEATING,
        RecordKind.INSTRUMENT_UNVERIFIED,
        RecordKind.INSTRUMENT_FAILED_VERIFICATION,
        RecordKind.INSTRUMENT_OVERDUE,
        RecordKind.NET_CONTENT_NONCOMPLIANT,
        RecordKind.SHORT_WEIGHT,
        RecordKind.METROLOGY_ACCIDENT,
    }
)
MEASURE_WORDS: dict[str, ReportMeasure] = {
    "警告": ReportMeasure.warning,
    "warning": ReportMeasure.warning,
    "通报批评": ReportMeasure.censure,
    "行业内通报批评": ReportMeasure.censure,
    "censure": ReportMeasure.censure,
}
#: What an institution may write in a violation row's ``kind`` cell: the code or the Chinese name.
VIOLATION_KIND_WORDS: dict[str, RecordKind] = {
    **{kind.value: kind for kind in VIOLATION_KINDS},
    "计量作弊": RecordKind.METROLOGY_CHEATING,
    "使用未经检定的计量器具": RecordKind.INSTRUMENT_UNVERIFIED,
    "未经检定": RecordKind.INSTRUMENT_UNVERIFIED,
    "使用检定不合格的计量器具": RecordKind.INSTRUMENT_FAILED_VERIFICATION,
    "检定不合格": RecordKind.INSTRUMENT_FAILED_VERIFICATION,
    "使用超过检定周期的计量器具": RecordKind.INSTRUMENT_OVERDUE,
    "超过检定周期": RecordKind.INSTRUMENT_OVERDUE,
    "超期未检": RecordKind.INSTRUMENT_OVERDUE,
    "定量包装商品净含量不合格": RecordKind.NET_CONTENT_NONCOMPLIANT,
    "净含量不合格": RecordKind.NET_CONTENT_NONCOMPLIANT,
    "缺斤短两": RecordKind.SHORT_WEIGHT,
    "短斤缺两": RecordKind.SHORT_WEIGHT,
    "缺斤少两": RecordKind.SHORT_WEIGHT,
    "计量事故": RecordKind.METROLOGY_ACCIDENT,
    "因计量器具不准确造成社会影响的计量事故": RecordKind.METROLOGY_ACCIDENT,
}
MEASURE_LABELS: dict[ReportMeasure, str] = {
    ReportMeasure.violation: "法定计量技术机构通报",
    ReportMeasure.warning: "行业组织警告",
    ReportMeasure.censure: "行业内通报批评",
}

Unit = Callable[[], AbstractContextManager[Session]]
#: (kind, fact date, source reference or None, instrument still in use as the institution states it)
Finding = tuple[RecordKind, date, str | None, bool | None]


# --- who may submit, and where ---------------------------------------------------------------------------


def area_path(session: Session, account: Account) -> str:
    """The materialised path an institution or association reaches: its division and below, or everywhere."""
    if account.jurisdiction_code is None:
        return "/"  # a national or provincial body without a bound division
    jurisdiction = session.get(Jurisdiction, account.jurisdiction_code)
    if jurisdiction is None:
        raise forbidden("账号未绑定有效辖区", "account has no valid jurisdiction")
    return jurisdiction.path


def organisation_of(account: Account) -> str:
    """The name written into verification records and summaries."""
    return (account.organisation or account.display_name or account.username)[:120]


# --- verification results --------------------------------------------------------------------------------


@dataclass
class VerificationInput:
    """One verification result, parsed (from a CSV row or a JSON body)."""

    row: int
    verified_on: date
    passed: bool
    certificate_no: str
    instrument_id: int | None = None
    instrument_code: str | None = None
    serial: str | None = None
    operator_uscc: str | None = None
    valid_until: date | None = None
    notes: str = ""
    overdue_in_use: bool | None = None


@dataclass
class _Inst:
    id: int
    operator_id: int
    serial: str
    type_code: str
    status: str
    last_verified_on: date | None
    last_passed: bool | None
    valid_until: date | None
    qr_serial: int
    uscc: str
    path: str


_Pending = tuple[VerificationInput, _Inst, date | None, list[Finding]]


@dataclass
class Outcome:
    """What a batch did: submissions written, rows already recorded, rows refused, records created."""

    submissions: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[tuple[VerificationInput, int]] = field(default_factory=list)  # with the instrument id
    problems: list[RowProblem] = field(default_factory=list)
    records_created: int = 0

    @property
    def rejected_rows(self) -> int:
        """Rows with at least one problem."""
        return len({p.row for p in self.problems})


def parse_verification_row(
    number: int, raw: dict[str, str], today: date
) -> VerificationInput | list[RowProblem]:
    """A CSV row as a VerificationInput, or every problem found in it."""
    problems: list[RowProblem] = csvfile.control_characters(number, raw)

    def text(column: str, limit: int, required: bool = False) -> str:
        value = raw.get(column, "")
        if required and not value:
            problems.append(problem(number, column, "missing_value"))
        if len(value) > limit:
            problems.append(problem(number, column, "value_too_long", limit=limit))
        return value

    def day(column: str, required: bool = False) -> date | None:
        return csvfile.date_cell(number, raw, column, problems, required=required)

    instrument_id: int | None = None
    if raw.get("instrument_id"):
        try:
            instrument_id = int(raw["instrument_id"])
            if instrument_id < 1:
                raise ValueError
        except ValueError:
            problems.append(problem(number, "instrument_id", "invalid_number", raw["instrument_id"]))
    code = text("instrument_code", 300) or None
    serial = text("serial", 64) or None
    uscc = text("operator_uscc", 40).upper() or None
    if not (raw.get("instrument_id") or code or serial):
        problems.append(problem(number, None, "missing_identifier"))
    verified_on = day("verified_on", required=True)
    if verified_on is not None and verified_on > today:
        problems.append(problem(number, "verified_on", "verification_in_future"))
    valid_until = day("valid_until")
    result = raw.get("passed", "").strip().lower()
    passed: bool | None = None
    if not result:
        problems.append(problem(number, "passed", "missing_value"))
    elif result in csvfile.TRUE_WORDS:
        passed = True
    elif result in csvfile.FALSE_WORDS:
        passed = False
    else:
        problems.append(problem(number, "passed", "invalid_result", raw["passed"]))
    certificate = text("certificate_no", 64, required=True)
    notes = text("notes", 2000)
    try:
        overdue_in_use = csvfile.parse_flag(raw.get("overdue_in_use", ""))
    except ValueError:
        problems.append(problem(number, "overdue_in_use", "invalid_flag", raw["overdue_in_use"]))
        overdue_in_use = None
    if problems or verified_on is None or passed is None:
        return problems
    return VerificationInput(
        row=number,
        verified_on=verified_on,
        passed=passed,
        certificate_no=certificate,
        instrument_id=instrument_id,
        instrument_code=code,
        serial=serial,
        operator_uscc=uscc,
        valid_until=valid_until,
        notes=notes,
        overdue_in_use=overdue_in_use,
    )


_INST_COLUMNS = (
    col(Instrument.id),
    col(Instrument.operator_id),
    col(Instrument.serial),
    col(Instrument.type_code),
    col(Instrument.status),
    col(Instrument.last_verified_on),
    col(Instrument.last_passed),
    col(Instrument.valid_until),
    col(Instrument.qr_serial),
    col(Operator.uscc),
    col(Jurisdiction.path),
)


def _one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN (...)`` with the values as one parameter: an array on PostgreSQL (``= ANY``), so thousands of
    values per chunk are neither expanded into separate parameters by SQLAlchemy nor parsed one by one."""
    items = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, items, type_=ARRAY(column.type)))
    # SQLite: one JSON array parameter read by json_each, for the same reason (SQLAlchemy's expansion of an
    # IN list costs more than the query itself at ten thousand values).
    values_table = func.json_each(bindparam(None, json.dumps(items), type_=String())).table_valued("value")
    return column.in_(sa_select(values_table.c.value))


def _load_instruments(session: Session, where: Any) -> list[_Inst]:
    stmt = (
        sa_select(*_INST_COLUMNS)
        .join(Operator, col(Operator.id) == col(Instrument.operator_id))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(where)
    )
    return [_Inst(*row) for row in session.execute(stmt).all()]


def _code_subject(code: str) -> tuple[int, int] | None:
    """(instrument id, sticker serial) of a genuine instrument QR token or its URL; None if not genuine."""
    token = code.rsplit("/q/", 1)[-1].split("?", 1)[0].strip("/")
    try:
        subject = key_ring().verify(token)
    except ForgedQR:
        return None
    if subject.kind is not SubjectKind.INSTRUMENT:
        return None
    return subject.subject_id, subject.serial


def _resolve(
    session: Session, items: Sequence[VerificationInput], area: str
) -> tuple[dict[int, _Inst], list[RowProblem]]:
    """The instrument of each item (by row number), found set-based; unknown or outside the area is a problem."""
    codes: dict[int, tuple[int, int] | None] = {
        item.row: _code_subject(item.instrument_code) for item in items if item.instrument_code
    }
    ids = {item.instrument_id for item in items if item.instrument_id is not None}
    ids |= {found[0] for found in codes.values() if found is not None}
    serials = {item.serial for item in items if item.serial}
    by_id: dict[int, _Inst] = {}
    by_serial: dict[str, list[_Inst]] = {}
    if ids:
        for inst in _load_instruments(session, _one_of(session, col(Instrument.id), ids)):
            by_id[inst.id] = inst
    if serials:
        for inst in _load_instruments(session, _one_of(session, col(Instrument.serial), serials)):
            by_serial.setdefault(inst.serial, []).append(inst)
            by_id[inst.id] = inst
    found: dict[int, _Inst] = {}
    problems: list[RowProblem] = []
    for item in items:
        candidates: list[_Inst | None] = []
        if item.instrument_id is not None:
            candidates.append(by_id.get(item.instrument_id))
        if item.instrument_code:
            subject = codes[item.row]
            if subject is None:
                problems.append(problem(item.row, "instrument_code", "invalid_instrument_code"))
                continue
            coded = by_id.get(subject[0])
            if coded is not None and coded.qr_serial != subject[1]:
                problems.append(problem(item.row, "instrument_code", "instrument_code_revoked"))
                continue
            candidates.append(coded)
        if item.serial:
            matches = [
                i
                for i in by_serial.get(item.serial, [])
                if i.path.startswith(area) and (item.operator_uscc is None or i.uscc == item.operator_uscc)
            ]
            if len(matches) > 1:
                problems.append(problem(item.row, "serial", "ambiguous_serial", item.serial))
                continue
            candidates.append(matches[0] if matches else None)
        if any(c is None or not c.path.startswith(area) for c in candidates):
            problems.append(problem(item.row, None, "unknown_instrument"))
            continue
        if len({c.id for c in candidates if c is not None}) != 1:
            problems.append(problem(item.row, None, "instrument_mismatch"))
            continue
        chosen = candidates[0]
        assert chosen is not None
        if item.operator_uscc is not None and chosen.uscc != item.operator_uscc:
            problems.append(problem(item.row, "operator_uscc", "instrument_mismatch"))
            continue
        found[item.row] = chosen
    return found, problems


def _record_row(
    *,
    operator_id: int,
    kind: RecordKind,
    fact_date: date,
    source_ref: str,
    summary: str,
    evidence_refs: list[str],
    instrument_id: int,
    instrument_still_in_use: bool | None,
    author_id: int | None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "operator_id": operator_id,
        "kind": kind,
        "fact_date": fact_date,
        "source": RecordSource.institution,
        "source_ref": source_ref,
        "summary": summary,
        "evidence_refs": evidence_refs,
        "instrument_id": instrument_id,
        "state": RecordState.REPORTED,
        "instrument_still_in_use": instrument_still_in_use,
        "social_impact": None,
        "public_eligible": False,
        "author_id": author_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def _state_of(inst: _Inst) -> dict[str, Any]:
    return {
        "last_verified_on": inst.last_verified_on,
        "last_passed": inst.last_passed,
        "valid_until": inst.valid_until,
    }


def apply_verifications(
    session: Session,
    items: Sequence[VerificationInput],
    *,
    account: Account,
    area: str,
    job_id: int | None = None,
    today: date | None = None,
) -> Outcome:
    """Record a batch of verification results set-based, in the caller's transaction; see the module doc."""
    today = today or records.bureau_today()
    outcome = Outcome()
    found, outcome.problems = _resolve(session, items, area)
    inst_ids = {inst.id for inst in found.values()}
    certificates = {item.certificate_no for item in items if item.row in found}
    known: dict[tuple[int, str], tuple[date, bool, date | None]] = {}
    if inst_ids:
        for inst_id, cert, on, passed, until in session.execute(
            sa_select(
                col(VerificationRecord.instrument_id),
                col(VerificationRecord.certificate_no),
                col(VerificationRecord.verified_on),
                col(VerificationRecord.passed),
                col(VerificationRecord.valid_until),
                # By instrument only (its index), certificates filtered here: a second array condition is checked
                # against every matched row, thousands of comparisons each.
            ).where(_one_of(session, col(VerificationRecord.instrument_id), inst_ids))
        ).all():
            if cert in certificates:
                known.setdefault((inst_id, cert), (on, passed, until))
    institution = organisation_of(account)
    now = utcnow()
    verifications: list[dict[str, Any]] = []
    pending: list[_Pending] = []
    before: dict[int, dict[str, Any]] = {}
    latest: dict[int, _Inst] = {}
    for item in items:
        inst = found.get(item.row)
        if inst is None:
            continue
        valid_until: date | None = None
        if item.passed:
            valid_until = item.valid_until or default_valid_until(inst.type_code, item.verified_on)
            if valid_until is not None and valid_until < item.verified_on:
                outcome.problems.append(problem(item.row, "valid_until", "invalid_valid_until"))
                continue
        key = (inst.id, item.certificate_no)
        facts = (item.verified_on, item.passed, valid_until)
        if key in known:
            if known[key] == facts:
                outcome.duplicates.append((item, inst.id))
            else:
                outcome.problems.append(
                    problem(item.row, "certificate_no", "certificate_conflict", item.certificate_no)
                )
            continue
        known[key] = facts
        findings: list[Finding] = []
        newer = inst.last_verified_on is None or item.verified_on >= inst.last_verified_on
        lapse = (
            inst.valid_until if inst.valid_until is not None and inst.valid_until < item.verified_on else None
        )
        derived = (
            item.overdue_in_use is None
            and newer
            and lapse is not None
            and inst.status == InstrumentStatus.in_use
        )
        if item.overdue_in_use or derived:
            # One lapse is one fact: the same reference as the overdue sweep's, so whichever comes first stands.
            ref = f"instrument:{inst.id}:overdue:{lapse.isoformat()}" if lapse is not None else None
            fact = lapse + timedelta(days=1) if lapse is not None else item.verified_on
            findings.append((RecordKind.INSTRUMENT_OVERDUE, fact, ref, True if item.overdue_in_use else None))
        if not item.passed:
            findings.append((RecordKind.INSTRUMENT_FAILED_VERIFICATION, item.verified_on, None, None))
        verifications.append(
            {
                "instrument_id": inst.id,
                "verified_on": item.verified_on,
                "passed": item.passed,
                "certificate_no": item.certificate_no,
                "institution": institution,
                "valid_until": valid_until,
                "recorded_by_id": account.id,
                "created_at": now,
            }
        )
        pending.append((item, inst, valid_until, findings))
        if newer:
            before.setdefault(inst.id, _state_of(inst))
            inst.last_verified_on, inst.last_passed, inst.valid_until = (
                item.verified_on,
                item.passed,
                valid_until,
            )
            latest[inst.id] = inst
    if not pending:
        return outcome
    bulk_insert(session, table_of(VerificationRecord), verifications, assign_ids=True)
    record_rows, record_owner = _finding_records(session, pending, verifications, account, institution)
    if record_rows:
        bulk_insert(session, table_of(IntegrityRecord), record_rows, assign_ids=True)
    record_ids: dict[int, list[int]] = {}
    for row, index in zip(record_rows, record_owner, strict=True):
        record_ids.setdefault(index, []).append(row["id"])
    submissions = [
        {
            "account_id": account.id,
            "job_id": job_id,
            "row_number": item.row if job_id is not None else None,
            "instrument_id": inst.id,
            "operator_id": inst.operator_id,
            "verification_record_id": verification["id"],
            "certificate_no": item.certificate_no,
            "verified_on": item.verified_on,
            "passed": item.passed,
            "valid_until": valid_until,
            "notes": item.notes,
            "overdue_in_use": item.overdue_in_use,
            "record_ids": record_ids.get(index, []),
            "created_at": now,
        }
        for index, ((item, inst, valid_until, _f), verification) in enumerate(
            zip(pending, verifications, strict=True)
        )
    ]
    bulk_insert(session, table_of(VerificationSubmission), submissions, assign_ids=True)
    # The instruments' public pages show the new verification (Core writes bypass the session hook).
    public_store.touch(session, {i.operator_id for i in latest.values()})
    if latest and session.get_bind().dialect.name == "postgresql":
        # One statement over arrays instead of one UPDATE per instrument.
        session.execute(
            text(
                "UPDATE instrument AS i SET last_verified_on = v.d, last_passed = v.p, valid_until = v.u "
                "FROM unnest(CAST(:ids AS integer[]), CAST(:ds AS date[]), CAST(:ps AS boolean[]), "
                "CAST(:us AS date[])) AS v(id, d, p, u) WHERE i.id = v.id"
            ),
            {
                "ids": [i.id for i in latest.values()],
                "ds": [i.last_verified_on for i in latest.values()],
                "ps": [i.last_passed for i in latest.values()],
                "us": [i.valid_until for i in latest.values()],
            },
        )
    elif latest:
        table = table_of(Instrument)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                last_verified_on=bindparam("b_on"),
                last_passed=bindparam("b_passed"),
                valid_until=bindparam("b_until"),
            ),
            [
                {
                    "b_id": i.id,
                    "b_on": i.last_verified_on,
                    "b_passed": i.last_passed,
                    "b_until": i.valid_until,
                }
                for i in latest.values()
            ],
        )
    items_to_audit: list[AuditItem] = []
    for submission, verification in zip(submissions, verifications, strict=True):
        inst_id = submission["instrument_id"]
        items_to_audit.append(
            AuditItem(
                "instrument.verification",
                "instrument",
                str(inst_id),
                before.get(inst_id),
                {
                    # The facts only: who recorded it and when are the audit entry's own actor and time.
                    "verification": {
                        "id": verification["id"],
                        "verified_on": verification["verified_on"],
                        "passed": verification["passed"],
                        "certificate_no": verification["certificate_no"],
                        "valid_until": verification["valid_until"],
                    },
                    "submission_id": submission["id"],
                    "job_id": job_id,
                    "record_ids": submission["record_ids"],
                },
            )
        )
    items_to_audit += _record_versions(session, record_rows, account)
    record_many(session, actor=account, items=items_to_audit)
    outcome.submissions = submissions
    outcome.records_created = len(record_rows)
    session.expire_all()  # Core statements changed rows the session may hold
    return outcome


def _finding_records(
    session: Session,
    pending: Sequence[_Pending],
    verifications: Sequence[dict[str, Any]],
    account: Account,
    institution: str,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Reported records for the findings, skipping lapses a live record already covers; with their row index."""
    lapse_refs = {ref for _i, _inst, _v, findings in pending for _k, _d, ref, _u in findings if ref}
    taken: set[str] = set()
    if lapse_refs:
        taken = set(
            session.execute(
                select(col(IntegrityRecord.source_ref)).where(
                    _one_of(session, col(IntegrityRecord.source_ref), lapse_refs),
                    col(IntegrityRecord.kind) == RecordKind.INSTRUMENT_OVERDUE,
                    col(IntegrityRecord.state) != RecordState.REVOKED,
                )
            ).scalars()
        )
    rows: list[dict[str, Any]] = []
    owners: list[int] = []
    for index, ((item, inst, _valid, findings), verification) in enumerate(
        zip(pending, verifications, strict=True)
    ):
        for kind, fact_date, ref, in_use in findings:
            if ref is not None and ref in taken:
                continue
            if ref is not None:
                taken.add(ref)
            if kind is RecordKind.INSTRUMENT_FAILED_VERIFICATION:
                summary = (
                    f"{institution}检定：计量器具（出厂编号 {inst.serial}）于 {item.verified_on.isoformat()} "
                    f"检定不合格，证书/通知书编号 {item.certificate_no}"
                )
            else:
                lapsed = f"检定有效期至 {_lapse_of(ref)}，" if ref else ""
                summary = (
                    f"{institution}检定时发现：计量器具（出厂编号 {inst.serial}）{lapsed}"
                    f"超过检定周期仍在使用（{item.verified_on.isoformat()} 检定，编号 {item.certificate_no}）"
                )
            if item.notes:
                summary += f"。备注：{item.notes}"
            rows.append(
                _record_row(
                    operator_id=inst.operator_id,
                    kind=kind,
                    fact_date=fact_date,
                    source_ref=ref or f"verification_record:{verification['id']}",
                    summary=summary,
                    evidence_refs=[
                        f"verification_record:{verification['id']}",
                        f"certificate:{item.certificate_no}",
                    ],
                    instrument_id=inst.id,
                    instrument_still_in_use=in_use,
                    author_id=account.id,
                )
            )
            owners.append(index)
    return rows, owners


def _lapse_of(ref: str) -> str:
    """The lapsed validity date inside an overdue reference ``instrument:<id>:overdue:<date>``."""
    return ref.rsplit(":", 1)[-1]


_RECORD_FIELDS = tuple(IntegrityRecord.model_fields)


def _record_snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """What ``snapshot(record)`` gives for a bulk-created record, without building an ORM object per row."""
    shot: dict[str, Any] = {}
    for name in _RECORD_FIELDS:
        value = row.get(name)
        if isinstance(value, datetime):
            value = iso_utc(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, list):
            value = list(value)
        shot[name] = value
    return shot


def _record_versions(session: Session, rows: Sequence[dict[str, Any]], actor: Actor) -> list[AuditItem]:
    """Version 1 of each bulk-created record and its audit entry, as ``records.service.create`` writes them."""
    if not rows:
        return []
    versions: list[dict[str, Any]] = []
    audit_items: list[AuditItem] = []
    now = utcnow()
    for row in rows:
        shot = _record_snapshot(row)
        versions.append(
            {
                "record_id": row["id"],
                "version": 1,
                "change": RecordChange.create,
                "reason": "法定计量技术机构检定发现 / found by a verification institution",
                "actor_id": actor.id,
                "actor_role": str(actor.role),
                "snapshot": shot,
                "at": now,
            }
        )
        audit_items.append(AuditItem("record.create", "integrity_record", str(row["id"]), None, shot))
    bulk_insert(session, table_of(IntegrityRecordVersion), versions)
    return audit_items


def submit_verification(
    session: Session, *, account: Account, item: VerificationInput
) -> tuple[VerificationSubmission, bool]:
    """One verification result through the API: (submission, created); a replay returns the first one."""
    area = area_path(session, account)
    today = records.bureau_today()
    if item.verified_on > today:
        raise AppError(
            422, "verification_in_future", "检定日期不能晚于今天", "verification date is in the future"
        )
    try:
        with session.begin_nested():
            outcome = apply_verifications(session, [item], account=account, area=area, today=today)
    except IntegrityError:
        # The same certificate submitted concurrently and committed first: now it is a duplicate.
        outcome = apply_verifications(session, [item], account=account, area=area, today=today)
    if outcome.problems:
        first = outcome.problems[0]
        status = {"certificate_conflict": 409, "unknown_instrument": 404}.get(first.code, 422)
        raise AppError(status, first.code, first.message_zh, first.message_en, {"column": first.column})
    if outcome.duplicates:
        _item, inst_id = outcome.duplicates[0]
        existing = session.execute(
            select(VerificationSubmission).where(
                col(VerificationSubmission.instrument_id) == inst_id,
                col(VerificationSubmission.certificate_no) == item.certificate_no,
                col(VerificationSubmission.account_id) == account.id,
            )
        ).scalar_one_or_none()
        if existing is None:
            raise conflict(
                "already_recorded",
                "该器具的此证书编号已由其他途径登记",
                "this certificate is already recorded for the instrument",
                {"certificate_no": item.certificate_no},
            )
        return existing, False
    submission = session.get(VerificationSubmission, outcome.submissions[0]["id"])
    assert submission is not None
    return submission, True


def get_submission(session: Session, account: Account, submission_id: int) -> VerificationSubmission:
    """One of the account's own submissions; 404 for anyone else's."""
    submission = session.get(VerificationSubmission, submission_id)
    if submission is None or submission.account_id != account.id:
        raise not_found("检定结果", "verification submission")
    return submission


def list_submissions(
    session: Session, account: Account, *, limit: int, offset: int
) -> tuple[Sequence[VerificationSubmission], int]:
    """The account's own submissions, newest first."""
    where = col(VerificationSubmission.account_id) == account.id
    total = session.execute(
        select(func.count()).select_from(VerificationSubmission).where(where)
    ).scalar_one()
    items = (
        session.execute(
            select(VerificationSubmission)
            .where(where)
            .order_by(col(VerificationSubmission.id).desc())
            .limit(limit)
            .offset(offset)
        )
        .scalars()
        .all()
    )
    return items, total


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
        found, problems = _resolve(session, [data.instrument], area)
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


# --- CSV jobs --------------------------------------------------------------------------------------------

_FORMATS: dict[JobKind, tuple[dict[str, str], frozenset[str], frozenset[str], int]] = {
    JobKind.verifications: (
        csvfile.VERIFICATION_HEADERS,
        csvfile.VERIFICATION_REQUIRED,
        csvfile.VERIFICATION_IDENTIFIERS,
        MAX_ROWS,
    ),
    JobKind.association_reports: (
        csvfile.ASSOCIATION_HEADERS,
        csvfile.ASSOCIATION_REQUIRED,
        frozenset(),
        MAX_ASSOCIATION_ROWS,
    ),
    JobKind.violation_reports: (
        csvfile.VIOLATION_HEADERS,
        csvfile.VIOLATION_REQUIRED,
        csvfile.VIOLATION_IDENTIFIERS,
        MAX_VIOLATION_ROWS,
    ),
}
JOB_ROLES: dict[JobKind, Role] = {
    JobKind.verifications: Role.institution,
    JobKind.association_reports: Role.association,
    JobKind.violation_reports: Role.institution,
}
#: How each kind of report row is read.
_REPORT_PARSERS: dict[JobKind, Callable[[int, dict[str, str]], ReportInput | list[RowProblem]]] = {
    JobKind.association_reports: parse_association_row,
    JobKind.violation_reports: parse_violation_row,
}


@dataclass(frozen=True)
class Table:
    """An uploaded CSV file, checked: its text, encoding, canonical column names and data row count."""

    text: str
    encoding: str
    names: list[str]
    total: int

    def rows(self) -> Iterator[csvfile.Row]:
        """The data rows, numbered as a spreadsheet shows them."""
        return csvfile.rows(self.text, self.names)


def read_table(
    data: bytes, aliases: dict[str, str], required: frozenset[str], one_of: frozenset[str], max_rows: int
) -> Table:
    """Decode and check an upload (encoding, columns, at least one and at most ``max_rows`` data rows)."""
    text, encoding = csvfile.decode(data)
    try:
        names = csvfile.header(text, aliases, required, one_of)
        total = sum(1 for _ in csvfile.rows(text, names))
    except csv.Error as exc:
        raise AppError(422, "malformed_csv", "CSV 格式错误", "malformed CSV", {"reason": str(exc)}) from None
    if total == 0:
        raise AppError(422, "empty_csv", "CSV 文件没有数据行", "the CSV file has no data rows")
    if total > max_rows:
        raise AppError(
            413,
            "too_many_rows",
            f"文件有 {total} 行，超过每个文件 {max_rows} 行的上限，请拆分后上传",
            f"the file has {total} rows, more than the {max_rows} allowed per file; split it",
            {"rows": total, "max_rows": max_rows},
        )
    return Table(text, encoding, names, total)


def create_job(
    session: Session,
    *,
    account: Account,
    kind: JobKind,
    filename: str,
    data: bytes,
    storage: MediaStorage,
) -> IntakeJob:
    """Check an upload (encoding, columns, row count), store it and queue its job; nothing is imported yet."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise AppError(
            413,
            "file_too_large",
            f"文件过大（上限 {MAX_UPLOAD_BYTES // 1024 // 1024} MB）",
            f"file larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB",
            {"limit_bytes": MAX_UPLOAD_BYTES},
        )
    aliases, required, one_of, max_rows = _FORMATS[kind]
    table = read_table(data, aliases, required, one_of, max_rows)
    encoding, total = table.encoding, table.total
    key = put_content_addressed(storage, data, namespace="intake", extension="csv")
    job = IntakeJob(
        account_id=account.id or 0,
        kind=kind,
        filename=filename[:255],
        file_key=key,
        file_sha256=key.rsplit("/", 1)[-1].split(".")[0],
        encoding=encoding,
        total_rows=total,
    )
    session.add(job)
    session.flush()
    audit.service.record(
        session,
        actor=account,
        action="intake.job_create",
        entity_type="intake_job",
        entity_id=job.id or 0,
        after=snapshot(job),
    )
    emit(session, "intake.job_submitted", {"job_id": job.id}, dedupe_key=f"intake.job_submitted:{job.id}")
    return job


def get_job(session: Session, account: Account, job_id: int) -> IntakeJob:
    """One of the account's own jobs; 404 for anyone else's."""
    job = session.get(IntakeJob, job_id)
    if job is None or job.account_id != account.id:
        raise not_found("导入任务", "intake job")
    return job


def list_jobs(
    session: Session, account: Account, *, limit: int, offset: int
) -> tuple[Sequence[IntakeJob], int]:
    """The account's own jobs, newest first."""
    where = col(IntakeJob.account_id) == account.id
    total = session.execute(select(func.count()).select_from(IntakeJob).where(where)).scalar_one()
    items = (
        session.execute(
            select(IntakeJob).where(where).order_by(col(IntakeJob.id).desc()).limit(limit).offset(offset)
        )
        .scalars()
        .all()
    )
    return items, total


def row_errors(
    session: Session, job_id: int, *, limit: int | None = None, offset: int = 0
) -> tuple[Sequence[IntakeRowError], int]:
    """A job's row errors in file order."""
    where = col(IntakeRowError.job_id) == job_id
    total = session.execute(select(func.count()).select_from(IntakeRowError).where(where)).scalar_one()
    stmt = (
        select(IntakeRowError).where(where).order_by(col(IntakeRowError.row_number), col(IntakeRowError.id))
    )
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    return session.execute(stmt).scalars().all(), total


def _chunk_outcome(
    session: Session, job: IntakeJob, account: Account, area: str, chunk: list[csvfile.Row]
) -> tuple[int, int, list[RowProblem], int]:
    """Import one chunk: (imported, duplicates, problems, records created)."""
    problems: list[RowProblem] = []
    if job.kind is JobKind.verifications:
        today = records.bureau_today()
        items: list[VerificationInput] = []
        for number, raw in chunk:
            parsed = parse_verification_row(number, raw, today)
            if isinstance(parsed, list):
                problems += parsed
            else:
                items.append(parsed)
        outcome = apply_verifications(session, items, account=account, area=area, job_id=job.id, today=today)
        problems += outcome.problems
        return len(outcome.submissions), len(outcome.duplicates), problems, outcome.records_created
    imported = duplicates = created_records = 0
    parse = _REPORT_PARSERS[job.kind]
    for number, raw in chunk:
        parsed_report = parse(number, raw)
        if isinstance(parsed_report, list):
            problems += parsed_report
            continue
        savepoint = session.begin_nested()
        try:
            _report, created = file_report(
                session, account=account, data=parsed_report, area=area, job_id=job.id
            )
        except AppError as exc:
            savepoint.rollback()
            column = exc.details.get("column") if isinstance(exc.details, dict) else None
            problems.append(RowProblem(number, column, exc.code, exc.message_zh, exc.message_en))
            continue
        savepoint.commit()
        if created:
            imported += 1
            created_records += 1
        else:
            duplicates += 1
    return imported, duplicates, problems, created_records


def _job_text(job: IntakeJob, storage: MediaStorage) -> Iterator[csvfile.Row]:
    aliases, required, one_of, _max = _FORMATS[job.kind]
    text = storage.get(job.file_key).decode(job.encoding)
    names = csvfile.header(text, aliases, required, one_of)
    return csvfile.rows(text, names)


def run_job(
    job_id: int, *, storage: MediaStorage, unit: Unit = session_scope, chunk_size: int = CHUNK
) -> JobState | None:
    """Import a job's file chunk by chunk, each chunk one transaction with its progress; resumes where it stopped.

    Idempotent: a finished job is left alone, and a redelivered task continues after the last committed chunk.
    """
    with unit() as session:
        job = session.get(IntakeJob, job_id)
        if job is None or job.state in (JobState.succeeded, JobState.failed):
            return job.state if job is not None else None
        job.state = JobState.running
        job.started_at = job.started_at or utcnow()
        session.add(job)
        done = job.rows_done
        account = session.get(Account, job.account_id)
        assert account is not None
        area = area_path(session, account)
        stream = _job_text(job, storage)
    for _ in range(done):
        next(stream, None)
    for chunk in csvfile.chunks(stream, chunk_size):
        with unit() as session:
            job = session.execute(
                select(IntakeJob).where(col(IntakeJob.id) == job_id).with_for_update()
            ).scalar_one()
            if job.rows_done != done or job.state is not JobState.running:
                return JobState(job.state)  # another delivery of this task took over
            account = session.get(Account, job.account_id)
            assert account is not None
            imported, duplicates, problems, created = _chunk_outcome(session, job, account, area, chunk)
            if problems:
                bulk_insert(
                    session,
                    table_of(IntakeRowError),
                    [
                        {
                            "job_id": job_id,
                            "row_number": p.row,
                            "column_name": p.column,
                            "code": p.code,
                            "message_zh": p.message_zh,
                            "message_en": p.message_en,
                        }
                        for p in problems
                    ],
                )
            job = session.execute(select(IntakeJob).where(col(IntakeJob.id) == job_id)).scalar_one()
            done += len(chunk)
            job.rows_done = done
            job.imported += imported
            job.duplicates += duplicates
            job.rejected += len({p.row for p in problems})
            job.records_created += created
            session.add(job)
    with unit() as session:
        job = session.execute(select(IntakeJob).where(col(IntakeJob.id) == job_id)).scalar_one()
        account = session.get(Account, job.account_id)
        assert account is not None
        job.state = JobState.succeeded
        job.finished_at = utcnow()
        session.add(job)
        audit.service.record(
            session,
            actor=account,
            action="intake.job_finish",
            entity_type="intake_job",
            entity_id=job_id,
            after=snapshot(job),
        )
        return JobState.succeeded


def fail_job(job_id: int, reason: str, *, unit: Unit = session_scope) -> None:
    """Mark a job failed (its file unreadable, or an error that retrying cannot fix); committed chunks stay."""
    with unit() as session:
        job = session.get(IntakeJob, job_id)
        if job is None or job.state is JobState.succeeded:
            return
        job.state = JobState.failed
        job.failure = reason[:2000]
        job.finished_at = utcnow()
        session.add(job)
