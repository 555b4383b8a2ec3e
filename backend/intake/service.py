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

This module holds what the intake sub-domains share (limits, vocabularies, who may submit where); the
work is in ``verifications.py``, ``reports.py``, ``jobs.py`` and ``memberships.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from backend.auth.models import Account
from backend.errors import forbidden
from backend.intake.models import ReportMeasure
from backend.jurisdictions.models import Jurisdiction
from backend.records.rules import RecordKind

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


def one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN (...)`` with the values as one parameter: an array on PostgreSQL (``= ANY``), so thousands of
    values per chunk are neither expanded into separate parameters by SQLAlchemy nor parsed one by one."""
    items = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, items, type_=ARRAY(column.type)))
    # SQLite: one JSON array parameter read by json_each, for the same reason (SQLAlchemy's expansion of an
    # IN list costs more than the query itself at ten thousand values).
    values_table = func.json_each(bindparam(None, json.dumps(items), type_=String())).table_valued("value")
    return column.in_(sa_select(values_table.c.value))
