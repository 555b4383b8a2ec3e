"""Verification results (Art. 15): parsed, resolved to instruments set-based, stored with their findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import bindparam, func, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.audit.service import Actor, AuditItem, record_many
from backend.auth.models import Account
from backend.db import bulk_insert, iso_utc, table_of, utcnow
from backend.errors import AppError, conflict, not_found
from backend.instruments.models import Instrument, InstrumentStatus, VerificationRecord
from backend.instruments.service import default_valid_until
from backend.intake import csvfile
from backend.intake.csvfile import RowProblem, problem
from backend.intake.models import VerificationSubmission
from backend.intake.service import Finding, area_path, one_of, organisation_of
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.public import store as public_store
from backend.qr.service import key_ring
from backend.qr.tokens import ForgedQR, SubjectKind
from backend.records import service as records
from backend.records.models import IntegrityRecord, IntegrityRecordVersion, RecordChange, RecordSource
from backend.records.rules import RecordKind, RecordState

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


def resolve_instruments(
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
        for inst in _load_instruments(session, one_of(session, col(Instrument.id), ids)):
            by_id[inst.id] = inst
    if serials:
        for inst in _load_instruments(session, one_of(session, col(Instrument.serial), serials)):
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
    found, outcome.problems = resolve_instruments(session, items, area)
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
            ).where(one_of(session, col(VerificationRecord.instrument_id), inst_ids))
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
                    one_of(session, col(IntegrityRecord.source_ref), lapse_refs),
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
