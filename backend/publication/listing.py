"""The published untrustworthy list (Art. 19): operators whose current class is 失信 and rests on a published record.

An operator is listed exactly when its public profile shows 失信 (``backend.public.integrity``): its stored
class is 失信 and at least one record named by the Art. 13 reasons of that class has passed the publication
review (``IntegrityRecord.public_eligible``). Each entry carries only public basic information and, of the
records behind the class, the published ones' kind, date and article: never a summary, evidence, phone number,
legal representative or anything about a complainant. An individual business's name often is, or contains,
its holder's name; there the holder's name is masked (张**), and the name search matches the masked name only,
so a search by a person's name reveals nothing the list does not show.

The same query serves the paged JSON listing and the CSV/JSON downloads, which stream the whole filtered list
in batches.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, bindparam, case, func, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.common.masking import MIN_NAME_CHARS, NAME_SEPARATORS, public_operator_name, search_form
from backend.errors import AppError
from backend.i18n import Locale
from backend.jurisdictions.models import DivisionLevel, Jurisdiction
from backend.operators.models import Operator, Sector
from backend.operators.uscc import InvalidUSCC, normalise_uscc
from backend.public.labels import sector_name
from backend.publication.schemas import (
    PublishedRecordPublic,
    UntrustworthyEntryPublic,
    UntrustworthyPagePublic,
)
from backend.records.models import IntegrityRecord, OperatorRating, RatingChange
from backend.records.rules import ART13_RULES, KIND_INFO, RULE_TEXT, IntegrityClass, RecordState, Rule

#: The deepest offset the paged listing serves; the downloads give the whole list.
MAX_OFFSET: Final = 100_000
#: Rows per batch when a download is streamed.
STREAM_BATCH: Final = 500
#: An individual business (个体工商户): registration authority 9 (market regulation), organisation type 2.

# Whether one of the records an operator's stored Art. 13 reasons name is published. JSON is read by each
# dialect's own functions; ``operator_rating`` is the outer query's table.
_BACKED: Final[dict[str, str]] = {
    "postgresql": """EXISTS (
        SELECT 1 FROM json_array_elements(operator_rating.reasons) AS r(reason)
        CROSS JOIN LATERAL json_array_elements_text(
            CASE WHEN json_typeof(r.reason -> 'record_ids') = 'array'
                 THEN r.reason -> 'record_ids' ELSE '[]'::json END) AS ids(record_id)
        JOIN integrity_record AS pr ON pr.id = ids.record_id::bigint
        WHERE r.reason ->> 'rule' IN :art13_rules AND pr.public_eligible AND pr.state = 'verified'
          AND pr.operator_id = operator_rating.operator_id)""",
    "sqlite": """EXISTS (
        SELECT 1 FROM json_each(operator_rating.reasons) AS r
        JOIN json_each(r.value, '$.record_ids') AS ids
        JOIN integrity_record AS pr ON pr.id = ids.value
        WHERE json_extract(r.value, '$.rule') IN :art13_rules AND pr.public_eligible = 1
          AND pr.state = 'verified' AND pr.operator_id = operator_rating.operator_id)""",
}


def _without_separators(column: Any) -> ColumnElement[str]:
    expr: ColumnElement[str] = column
    for separator in NAME_SEPARATORS:
        expr = func.replace(expr, separator, "")
    return expr


def public_name_sql() -> ColumnElement[str]:
    """The operator's name as a public search compares it: the legal representative's name masked (张**), then
    spaces and middle dots removed.

    It equals ``search_form(public_operator_name(...))`` of ``backend.common.masking``, which shows the name, so
    the name search matches exactly what the list shows, however the person's name is spaced.
    """
    holder = _without_separators(col(Operator.legal_representative))
    name = _without_separators(col(Operator.name))
    masked = func.replace(name, holder, func.substr(holder, 1, 1).concat("**"))
    expr: ColumnElement[str] = case((func.length(holder) >= MIN_NAME_CHARS, masked), else_=name)
    return expr


def _since() -> ColumnElement[date]:
    """The day the current 失信 class began: the latest change into it (the stored date without history)."""
    entered = (
        select(func.max(col(RatingChange.as_of)))
        .where(
            col(RatingChange.operator_id) == col(Operator.id),
            col(RatingChange.to_cls) == IntegrityClass.UNTRUSTWORTHY,
        )
        .correlate(Operator)
        .scalar_subquery()
    )
    expr: ColumnElement[date] = func.coalesce(entered, col(OperatorRating.as_of))
    return expr


@dataclass(frozen=True)
class ListFilter:
    """The public filters: a jurisdiction (and everything below it), a sector, a name or code, listing dates."""

    jurisdiction_code: str | None = None
    sector: Sector | None = None
    q: str | None = None
    since_from: date | None = None
    since_to: date | None = None


def _jurisdiction(session: Session, code: str) -> Jurisdiction:
    place = session.get(Jurisdiction, code)
    if place is None:
        raise AppError(
            422,
            "invalid_jurisdiction_code",
            "行政区划代码不存在",
            "unknown jurisdiction code",
            {"jurisdiction_code": code},
        )
    return place


def _uscc_or_none(term: str) -> str | None:
    try:
        return normalise_uscc(term)
    except InvalidUSCC:
        return None


def build_query(session: Session, flt: ListFilter) -> Select[Any]:
    """The listed operators matching the filters, the most recently listed first; refuses bad filters (422)."""
    if flt.since_from and flt.since_to and flt.since_from > flt.since_to:
        raise AppError(
            422,
            "invalid_date_range",
            "起始日期不能晚于截止日期",
            "since_from must not be after since_to",
            {"since_from": flt.since_from.isoformat(), "since_to": flt.since_to.isoformat()},
        )
    dialect = session.get_bind().dialect.name
    since = _since().label("since")
    stmt = (
        sa_select(
            col(Operator.id),
            col(Operator.name),
            col(Operator.legal_representative),
            col(Operator.uscc),
            col(Operator.sector),
            col(Operator.jurisdiction_code),
            col(Jurisdiction.name),
            since,
        )
        .select_from(Operator)
        .join(OperatorRating, col(OperatorRating.operator_id) == col(Operator.id))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(
            col(OperatorRating.cls) == IntegrityClass.UNTRUSTWORTHY,
            col(Operator.is_active).is_(True),
            text(_BACKED["postgresql" if dialect == "postgresql" else "sqlite"]).bindparams(
                bindparam("art13_rules", [rule.value for rule in ART13_RULES], expanding=True)
            ),
        )
    )
    if flt.jurisdiction_code is not None:
        place = _jurisdiction(session, flt.jurisdiction_code)
        if place.level == DivisionLevel.county:
            stmt = stmt.where(col(Operator.jurisdiction_code) == place.code)
        else:
            stmt = stmt.where(col(Jurisdiction.path).startswith(place.path, autoescape=True))
    if flt.sector is not None:
        stmt = stmt.where(col(Operator.sector) == flt.sector)
    term = (flt.q or "").strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in term):
        # PostgreSQL text cannot hold NUL, and SQLite's LIKE stops at it: a control character is no search.
        raise AppError(
            422, "invalid_search_term", "搜索词含有控制字符", "the search term contains control characters"
        )
    if term:
        uscc = _uscc_or_none(term)
        if uscc is not None:
            stmt = stmt.where(col(Operator.uscc) == uscc)
        else:
            # autoescape: % and _ typed by the public are literal characters, not wildcards.
            stmt = stmt.where(public_name_sql().contains(search_form(term), autoescape=True))
    if flt.since_from is not None:
        stmt = stmt.where(_since() >= flt.since_from)
    if flt.since_to is not None:
        stmt = stmt.where(_since() <= flt.since_to)
    return stmt.order_by(since.desc(), col(Operator.id).desc())


def _art13_reasons(reasons: Sequence[dict[str, Any]]) -> dict[int, Rule]:
    """Record id → the Art. 13 rule that names it (the first, in the article's order)."""
    named: dict[int, Rule] = {}
    art13 = {rule.value: rule for rule in ART13_RULES}
    for reason in reasons:
        rule = art13.get(str(reason.get("rule")))
        if rule is None:
            continue
        for raw in reason.get("record_ids", ()) or ():
            if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
                named.setdefault(int(raw), rule)
    return named


def _published_records(
    session: Session, operator_ids: Sequence[int], locale: Locale
) -> dict[int, list[PublishedRecordPublic]]:
    """Per operator, the published records behind its 失信 class, the newest facts first (two queries)."""
    if not operator_ids:
        return {}
    named: dict[int, Rule] = {}
    for reasons in session.execute(
        select(col(OperatorRating.reasons)).where(col(OperatorRating.operator_id).in_(operator_ids))
    ).scalars():
        for record_id, rule in _art13_reasons(reasons or []).items():
            named.setdefault(record_id, rule)
    result: dict[int, list[PublishedRecordPublic]] = {i: [] for i in operator_ids}
    if not named:
        return result
    rows = session.execute(
        sa_select(
            col(IntegrityRecord.id),
            col(IntegrityRecord.operator_id),
            col(IntegrityRecord.kind),
            col(IntegrityRecord.fact_date),
        )
        .where(
            col(IntegrityRecord.id).in_(sorted(named)),
            col(IntegrityRecord.operator_id).in_(operator_ids),
            col(IntegrityRecord.public_eligible).is_(True),
            col(IntegrityRecord.state) == RecordState.VERIFIED,
        )
        .order_by(col(IntegrityRecord.fact_date).desc(), col(IntegrityRecord.id).desc())
    ).all()
    for record_id, operator_id, kind, fact_date in rows:
        info = KIND_INFO[kind]
        rule_text = RULE_TEXT[named[record_id]]
        result[operator_id].append(
            PublishedRecordPublic(
                kind=kind,
                kind_name=info.label_zh if locale == "zh-CN" else info.label_en,
                fact_date=fact_date,
                article=rule_text.article,
                article_name=rule_text.article_zh if locale == "zh-CN" else rule_text.article_en,
            )
        )
    return result


def _entries(session: Session, rows: Sequence[Any], locale: Locale) -> list[UntrustworthyEntryPublic]:
    records = _published_records(session, [r[0] for r in rows], locale)
    return [
        UntrustworthyEntryPublic(
            operator_id=operator_id,
            name=public_operator_name(name, representative),
            uscc=uscc,
            sector=Sector(sector),
            sector_name=sector_name(Sector(sector), locale),
            jurisdiction_code=code,
            jurisdiction_name=place,
            untrustworthy_since=since,
            records=records.get(operator_id, []),
        )
        for operator_id, name, representative, uscc, sector, code, place, since in rows
    ]


def page(
    session: Session, flt: ListFilter, *, limit: int, offset: int, locale: Locale
) -> UntrustworthyPagePublic:
    """One page of the list with the total."""
    stmt = build_query(session, flt)
    total = int(
        session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    )
    rows = session.execute(stmt.limit(limit).offset(offset)).all() if offset < total else []
    return UntrustworthyPagePublic(
        items=_entries(session, rows, locale), total=total, limit=limit, offset=offset
    )


def iter_entries(
    session: Session, stmt: Select[Any], locale: Locale, batch: int | None = None
) -> Iterator[list[UntrustworthyEntryPublic]]:
    """The whole list in batches (``STREAM_BATCH`` rows), read through one streamed result."""
    size = batch or STREAM_BATCH
    result = session.execute(stmt.execution_options(yield_per=size))
    try:
        for rows in result.partitions(size):
            yield _entries(session, rows, locale)
    finally:
        result.close()


# --- downloads ------------------------------------------------------------------------------------------------

CSV_HEADERS: Final[dict[Locale, tuple[str, ...]]] = {
    "zh-CN": (
        "经营者名称",
        "统一社会信用代码",
        "行业",
        "行政区划代码",
        "所属辖区",
        "列入失信日期",
        "公开的不良记录",
    ),
    "en": (
        "Operator name",
        "Unified social credit code",
        "Sector",
        "Jurisdiction code",
        "Jurisdiction",
        "Untrustworthy since",
        "Published bad records",
    ),
}
#: Characters that make a spreadsheet read a cell as a formula (CSV injection); such cells get a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _records_cell(records: Sequence[PublishedRecordPublic], locale: Locale) -> str:
    if locale == "zh-CN":
        return "；".join(f"{r.fact_date.isoformat()} {r.kind_name}（{r.article_name}）" for r in records)
    return "; ".join(f"{r.fact_date.isoformat()} {r.kind_name} ({r.article_name})" for r in records)


def csv_chunks(session: Session, stmt: Select[Any], locale: Locale) -> Iterator[bytes]:
    """The list as CSV, UTF-8 with a byte-order mark (so spreadsheets read the Chinese), one chunk per batch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADERS[locale])
    yield buffer.getvalue().encode("utf-8")
    for entries in iter_entries(session, stmt, locale):
        buffer.seek(0)
        buffer.truncate()
        for e in entries:
            writer.writerow(
                [
                    _cell(e.name),
                    _cell(e.uscc),
                    _cell(e.sector_name),
                    e.jurisdiction_code,
                    _cell(e.jurisdiction_name),
                    e.untrustworthy_since.isoformat(),
                    _cell(_records_cell(e.records, locale)),
                ]
            )
        yield buffer.getvalue().encode("utf-8")


def json_chunks(session: Session, stmt: Select[Any], locale: Locale) -> Iterator[bytes]:
    """The list as one JSON array of entries, streamed."""
    yield b"["
    first = True
    for entries in iter_entries(session, stmt, locale):
        parts = [e.model_dump_json() for e in entries]
        if parts:
            yield ("" if first else ",").encode() + ",".join(parts).encode("utf-8")
            first = False
    yield b"]"
