"""Bulk CSV import of operators and instruments: idempotent on the code, per-row error report, batched SQL.

Headers may be Chinese (as bureaus keep them) or English. Rows are validated with the same schemas as the API,
written in batches with multi-row INSERT/UPDATE, and every created or changed row is audited.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from itertools import islice
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from backend.audit.service import Actor, AuditItem, record_many
from backend.auth.scope import Scope
from backend.dates import bureau_date
from backend.db import bulk_insert, one_of, table_of, utcnow
from backend.errors import AppError
from backend.instruments.catalogue import BY_CODE
from backend.instruments.models import Instrument, VerificationRecord
from backend.instruments.service import default_valid_until
from backend.jurisdictions.models import DivisionLevel, Jurisdiction
from backend.operators.models import Operator, Stall
from backend.operators.schemas import ImportReport, ImportRowError, OperatorCreate
from backend.public import store as public_store

MAX_API_BYTES = 20 * 1024 * 1024
BATCH = 2000
Progress = Callable[[int], None]

OPERATOR_HEADERS: dict[str, str] = {
    "统一社会信用代码": "uscc",
    "名称": "name",
    "经营者名称": "name",
    "行业": "sector",
    "地址": "address",
    "法定代表人": "legal_representative",
    "行政区划代码": "jurisdiction_code",
    "经度": "lon",
    "纬度": "lat",
    "电话": "phone",
}
INSTRUMENT_HEADERS: dict[str, str] = {
    "统一社会信用代码": "operator_uscc",
    "经营者统一社会信用代码": "operator_uscc",
    "器具类型": "type_code",
    "出厂编号": "serial",
    "制造商": "maker",
    "型号": "model",
    "摊位号": "stall_number",
    "检定日期": "verified_on",
    "检定结果": "passed",
    "证书编号": "certificate_no",
    "检定机构": "institution",
    "有效期至": "valid_until",
}
_TRUE = {"合格", "通过", "pass", "passed", "true", "1", "yes", "是"}
_FALSE = {"不合格", "fail", "failed", "false", "0", "no", "否"}
_OPERATOR_FIELDS = (
    "name",
    "sector",
    "address",
    "legal_representative",
    "jurisdiction_code",
    "lon",
    "lat",
    "phone",
)


def decode_csv(data: bytes) -> str:
    """Decode an uploaded CSV: UTF-8 (with or without BOM) or GB18030, as Chinese spreadsheets save it."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AppError(
        415, "unsupported_encoding", "文件编码无法识别，请使用 UTF-8", "unreadable encoding; use UTF-8"
    )


def _rows(
    lines: Iterable[str], aliases: dict[str, str], required: set[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise AppError(422, "empty_csv", "CSV 文件为空", "the CSV file is empty")
    names = [aliases.get(h.strip().lstrip("\ufeff"), h.strip().lstrip("\ufeff")) for h in reader.fieldnames]
    missing = required - set(names)
    if missing:
        raise AppError(
            422,
            "missing_columns",
            "CSV 缺少必需的列",
            "the CSV lacks required columns",
            {"missing": sorted(missing)},
        )
    for number, raw in enumerate(reader, start=2):
        values = list(raw.values())
        yield (
            number,
            {n: (v or "").strip() for n, v in zip(names, values, strict=False) if isinstance(v, str)},
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector (reference counting still frees everything at once).

    A batch allocates tens of thousands of short-lived dicts, each set of 700 triggering a collection that
    also walks the survivors; that was a sixth of an import's CPU time, for almost no cyclic garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _chunks(
    it: Iterator[tuple[int, dict[str, str]]], size: int
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    # The collector stays paused while a chunk is read and while the caller writes it.
    while True:
        with _gc_paused():
            chunk = list(islice(it, size))
            if not chunk:
                return
            yield chunk


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    code = err["type"] if err["type"] == "invalid_uscc" else "invalid_row"
    return code, f"{loc}: {err['msg']}" if loc else str(err["msg"])


def _counties_in_scope(session: Session, scope: Scope) -> set[str]:
    return set(
        session.execute(
            select(col(Jurisdiction.code)).where(
                col(Jurisdiction.level) == DivisionLevel.county,
                col(Jurisdiction.path).startswith(scope.path),
            )
        ).scalars()
    )


def import_operators(
    session: Session, lines: Iterable[str], *, scope: Scope, progress: Progress | None = None
) -> ImportReport:
    """Create or update operators from CSV rows; returns counts and an error per rejected row."""
    counties = _counties_in_scope(session, scope)
    report = ImportReport(created=0, updated=0, unchanged=0, errors=[])
    seen: set[str] = set()
    required = {"uscc", "name", "sector", "address", "legal_representative", "jurisdiction_code"}
    for chunk in _chunks(_rows(lines, OPERATOR_HEADERS, required), BATCH):
        valid: dict[str, tuple[int, dict[str, Any]]] = {}
        for number, raw in chunk:
            try:
                location = (
                    {"lon": raw["lon"], "lat": raw["lat"]} if raw.get("lon") and raw.get("lat") else None
                )
                data = OperatorCreate.model_validate(
                    {k: raw.get(k) or None for k in required | {"phone"}} | {"location": location}
                )
            except ValidationError as exc:
                code, message = _first_error(exc)
                report.errors.append(ImportRowError(row=number, code=code, message=message))
                continue
            if data.jurisdiction_code not in counties:
                report.errors.append(
                    ImportRowError(
                        row=number,
                        code="jurisdiction_out_of_scope",
                        message=f"行政区划 {data.jurisdiction_code} 不是您辖区内的县级区划",
                    )
                )
                continue
            if data.uscc in seen:
                report.errors.append(
                    ImportRowError(row=number, code="duplicate_in_file", message=f"{data.uscc} 在文件中重复")
                )
                continue
            seen.add(data.uscc)
            values = data.model_dump(exclude={"location", "uscc"})
            values["lon"] = data.location.lon if data.location else None
            values["lat"] = data.location.lat if data.location else None
            valid[data.uscc] = (number, values)
        _write_operator_batch(session, valid, scope.user, report)
        if progress:
            progress(len(chunk))
    return report


def _write_operator_batch(
    session: Session, valid: dict[str, tuple[int, dict[str, Any]]], actor: Actor, report: ImportReport
) -> None:
    if not valid:
        return
    existing = {
        row.uscc: row
        for row in session.execute(
            select(Operator).where(one_of(session, col(Operator.uscc), valid))
        ).scalars()
    }
    now = utcnow()
    new_rows = [
        {"uscc": uscc, **values, "created_at": now, "updated_at": now}
        for uscc, (_n, values) in valid.items()
        if uscc not in existing
    ]
    audit_items: list[AuditItem] = []
    if new_rows:
        bulk_insert(session, table_of(Operator), new_rows, assign_ids=True)
        by_uscc = {row["uscc"]: row["id"] for row in new_rows}
        for row in new_rows:
            audit_items.append(
                AuditItem("operator.import_create", "operator", str(by_uscc[row["uscc"]]), None, row)
            )
        report.created += len(new_rows)
    changes = []
    for uscc, (_n, values) in valid.items():
        current = existing.get(uscc)
        if current is None:
            continue
        diff = {k: v for k, v in values.items() if getattr(current, k) != v}
        if not diff:
            report.unchanged += 1
            continue
        before = {k: getattr(current, k) for k in diff}
        changes.append({"id": current.id, **diff, "updated_at": now})
        audit_items.append(AuditItem("operator.import_update", "operator", str(current.id), before, diff))
    if changes:
        for change in changes:
            # Rows change different columns, so each is its own UPDATE; re-imports change few rows.
            table = table_of(Operator)
            values = {k: v for k, v in change.items() if k != "id"}
            session.execute(update(table).where(table.c.id == change["id"]).values(**values))
        report.updated += len(changes)
        # Core writes bypass the session hook: the changed operators' public pages are stale now.
        public_store.touch(session, (change["id"] for change in changes))
    record_many(session, actor=actor, items=audit_items)
    session.expire_all()


def _parse_date(value: str) -> date | None:
    if not value:
        return None
    return date.fromisoformat(value.replace("/", "-"))


def import_instruments(
    session: Session,
    lines: Iterable[str],
    *,
    scope: Scope,
    progress: Progress | None = None,
    today: date | None = None,
) -> ImportReport:
    """Create instruments (idempotent on operator + serial) and their latest verification from CSV rows."""
    today = today or bureau_date()
    report = ImportReport(created=0, updated=0, unchanged=0, errors=[])
    required = {"operator_uscc", "type_code", "serial"}
    for chunk in _chunks(_rows(lines, INSTRUMENT_HEADERS, required), BATCH):
        usccs = {raw["operator_uscc"].upper() for _n, raw in chunk}
        operators = {
            uscc: (op_id, path)
            for op_id, uscc, path in session.execute(
                select(col(Operator.id), col(Operator.uscc), col(Jurisdiction.path))
                .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
                .where(one_of(session, col(Operator.uscc), usccs))
            ).all()
        }
        op_ids = [op_id for op_id, path in operators.values() if scope.covers(path)]
        existing = {
            (op_id, serial): inst_id
            for inst_id, op_id, serial in session.execute(
                select(col(Instrument.id), col(Instrument.operator_id), col(Instrument.serial)).where(
                    one_of(session, col(Instrument.operator_id), op_ids)
                )
            ).all()
        }
        stalls = {
            (m, num): sid
            for sid, m, num in session.execute(
                select(col(Stall.id), col(Stall.market_id), col(Stall.number)).where(
                    one_of(session, col(Stall.market_id), op_ids)
                )
            ).all()
        }
        new_rows: list[dict[str, Any]] = []
        verifications: list[tuple[tuple[int, str], dict[str, Any]]] = []
        seen: set[tuple[int, str]] = set()
        for number, raw in chunk:
            try:
                row, verification = _instrument_row(raw, operators, scope, stalls, today)
            except ValueError as exc:
                code, _, message = str(exc).partition(":")
                report.errors.append(ImportRowError(row=number, code=code, message=message.strip()))
                continue
            key = (row["operator_id"], row["serial"])
            if key in seen:
                report.errors.append(
                    ImportRowError(row=number, code="duplicate_in_file", message=row["serial"])
                )
                continue
            seen.add(key)
            if key in existing:
                report.unchanged += 1
            else:
                if verification:
                    # A new instrument carries its newest verification in the INSERT itself (no UPDATE later).
                    row |= {
                        "last_verified_on": verification["verified_on"],
                        "last_passed": verification["passed"],
                        "valid_until": verification["valid_until"],
                    }
                new_rows.append(row)
            if verification:
                verifications.append((key, verification))
        audit_items: list[AuditItem] = []
        new_ids: set[int] = set()
        if new_rows:
            now = utcnow()
            rows = [{**r, "created_at": now} for r in new_rows]
            bulk_insert(session, table_of(Instrument), rows, assign_ids=True)
            public_store.touch(session, {r["operator_id"] for r in rows})
            created = [(r["id"], r["operator_id"], r["serial"]) for r in rows]
            for inst_id, op_id, serial in created:
                existing[(op_id, serial)] = inst_id
                new_ids.add(inst_id)
            by_key = {(r["operator_id"], r["serial"]): r for r in new_rows}
            # One entry per new instrument, carrying its first verification too.
            audit_items += [
                AuditItem("instrument.import_create", "instrument", str(i), None, by_key[(o, s)])
                for i, o, s in created
            ]
            report.created += len(new_rows)
        if verifications:
            _write_verifications(session, verifications, existing, new_ids, audit_items)
        record_many(session, actor=scope.user, items=audit_items)
        if progress:
            progress(len(chunk))
    return report


def _instrument_row(
    raw: dict[str, str],
    operators: dict[str, tuple[int, str]],
    scope: Scope,
    stalls: dict[tuple[int, str], int],
    today: date,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    found = operators.get(raw["operator_uscc"].upper())
    if found is None or not scope.covers(found[1]):
        raise ValueError("unknown_operator: 经营者不存在或不在您的辖区内")
    op_id = found[0]
    type_code = raw["type_code"]
    if type_code not in BY_CODE:
        raise ValueError(f"unknown_instrument_type: {type_code}")
    serial = raw["serial"]
    if not serial or len(serial) > 64:
        raise ValueError("invalid_serial: 出厂编号为空或过长")
    stall_id = None
    if raw.get("stall_number"):
        stall_id = stalls.get((op_id, raw["stall_number"]))
        if stall_id is None:
            raise ValueError(f"unknown_stall: {raw['stall_number']}")
    row: dict[str, Any] = {
        "operator_id": op_id,
        "type_code": type_code,
        "serial": serial,
        "maker": raw.get("maker", "")[:100],
        "model": raw.get("model", "")[:100],
        "stall_id": stall_id,
        "status": "in_use",
        "qr_serial": 1,
        # Every row carries every column: Core executemany needs uniform parameter sets.
        "last_verified_on": None,
        "last_passed": None,
        "valid_until": None,
    }
    try:
        verified_on = _parse_date(raw.get("verified_on", ""))
        valid_until = _parse_date(raw.get("valid_until", ""))
    except ValueError:
        raise ValueError("invalid_date: 日期格式应为 YYYY-MM-DD") from None
    if verified_on is None:
        return row, None
    if verified_on > today:
        raise ValueError("verification_in_future: 检定日期晚于今天")
    result = raw.get("passed", "").lower()
    if result not in _TRUE | _FALSE:
        raise ValueError("invalid_result: 检定结果应为 合格/不合格")
    passed = result in _TRUE
    if passed and valid_until is None:
        valid_until = default_valid_until(type_code, verified_on)
    verification = {
        "verified_on": verified_on,
        "passed": passed,
        "certificate_no": raw.get("certificate_no", "")[:64],
        "institution": raw.get("institution", "")[:120],
        "valid_until": valid_until if passed else None,
    }
    return row, verification


def _write_verifications(
    session: Session,
    verifications: list[tuple[tuple[int, str], dict[str, Any]]],
    instrument_ids: dict[tuple[int, str], int],
    new_ids: set[int],
    audit_items: list[AuditItem],
) -> None:
    # Instruments created in this batch have no records yet and carry this verification already: only the
    # ones that existed before need looking up (none on a first import).
    ids = sorted({instrument_ids[key] for key, _v in verifications} - new_ids)
    known: set[Any] = set()
    current: dict[int, tuple[Any, Any]] = {}
    if ids:
        known = set(
            session.execute(
                select(
                    col(VerificationRecord.instrument_id),
                    col(VerificationRecord.verified_on),
                    col(VerificationRecord.certificate_no),
                ).where(one_of(session, col(VerificationRecord.instrument_id), ids))
            ).all()
        )
        current = {
            i: (d, p)
            for i, d, p in session.execute(
                select(
                    col(Instrument.id), col(Instrument.last_verified_on), col(Instrument.last_passed)
                ).where(one_of(session, col(Instrument.id), ids))
            ).all()
        }
    now = utcnow()
    new_records = []
    latest: dict[int, dict[str, Any]] = {}
    updated_operators: set[int] = set()
    for key, v in verifications:
        inst_id = instrument_ids[key]
        if (inst_id, v["verified_on"], v["certificate_no"]) in known:
            continue
        new_records.append({"instrument_id": inst_id, **v, "created_at": now})
        last_on = current.get(inst_id, (None, None))[0]
        if last_on is None or v["verified_on"] >= last_on:
            latest[inst_id] = v
            if inst_id not in new_ids:
                updated_operators.add(key[0])
    if new_records:
        bulk_insert(session, table_of(VerificationRecord), new_records)
    updates = []
    for inst_id, v in latest.items():
        if inst_id not in new_ids:
            audit_items.append(
                AuditItem("instrument.import_verification", "instrument", str(inst_id), None, v)
            )
            updates.append(
                {
                    "b_id": inst_id,
                    "b_on": v["verified_on"],
                    "b_passed": v["passed"],
                    "b_until": v["valid_until"],
                }
            )
    if updates:
        # One executemany for the whole batch instead of a round trip per instrument.
        table = table_of(Instrument)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                last_verified_on=bindparam("b_on"),
                last_passed=bindparam("b_passed"),
                valid_until=bindparam("b_until"),
            )
        )
        session.execute(stmt, updates)
        public_store.touch(session, updated_operators)
