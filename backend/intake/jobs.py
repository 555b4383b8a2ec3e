"""CSV jobs: an upload stored and run in chunks by a worker, each row checked, its problems kept per row."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import snapshot
from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.db import bulk_insert, session_scope, table_of, utcnow
from backend.errors import AppError, not_found
from backend.intake import csvfile
from backend.intake.csvfile import RowProblem
from backend.intake.models import IntakeJob, IntakeRowError, JobKind, JobState
from backend.intake.reports import ReportInput, file_report, parse_association_row, parse_violation_row
from backend.intake.service import (
    CHUNK,
    MAX_ASSOCIATION_ROWS,
    MAX_ROWS,
    MAX_UPLOAD_BYTES,
    MAX_VIOLATION_ROWS,
    Unit,
    area_path,
)
from backend.intake.verifications import VerificationInput, apply_verifications, parse_verification_row
from backend.jurisdictions.models import Jurisdiction
from backend.media.storage import MediaStorage, put_content_addressed
from backend.outbox.service import emit
from backend.records import service as records

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


def list_in_scope(
    session: Session, scope: Scope, *, limit: int, offset: int
) -> tuple[Sequence[tuple[IntakeJob, Account]], int]:
    """Jobs uploaded by institutions and associations bound inside a staff scope, newest first."""
    stmt = (
        select(IntakeJob, Account)
        .join(Account, col(Account.id) == col(IntakeJob.account_id))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Account.jurisdiction_code))
        .where(col(Jurisdiction.path).startswith(scope.path))
    )
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(col(IntakeJob.id).desc()).limit(limit).offset(offset)).all()
    return [(job, account) for job, account in rows], total


def get_in_scope(session: Session, scope: Scope, job_id: int) -> tuple[IntakeJob, Account]:
    """A job whose uploader is bound inside the scope; 404 otherwise (admins see every job)."""
    found = session.execute(
        select(IntakeJob, Account, col(Jurisdiction.path))
        .join(Account, col(Account.id) == col(IntakeJob.account_id))
        .outerjoin(Jurisdiction, col(Jurisdiction.code) == col(Account.jurisdiction_code))
        .where(col(IntakeJob.id) == job_id)
    ).first()
    if found is None or (scope.path != "/" and (found[2] is None or not scope.covers(found[2]))):
        raise not_found("导入任务", "intake job")
    return found[0], found[1]


def progress_percent(job: IntakeJob) -> float:
    """How far a job is, in percent of its rows (a job with no rows counted yet is at 0 until it ends)."""
    if job.total_rows:
        return round(100.0 * job.rows_done / job.total_rows, 1)
    return 100.0 if job.state in (JobState.succeeded, JobState.failed) else 0.0


def errors_csv(session: Session, job: IntakeJob) -> str:
    """The whole row-error report as CSV text, with a BOM so spreadsheet programs read the Chinese as UTF-8."""
    errors, _total = row_errors(session, job.id or 0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["行号 row", "列 column", "错误代码 code", "说明", "message"])
    for e in errors:
        writer.writerow([e.row_number, e.column_name or "", e.code, e.message_zh, e.message_en])
    return "\ufeff" + out.getvalue()


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
