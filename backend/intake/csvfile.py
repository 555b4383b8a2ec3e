"""Reading intake CSV files: encoding detection, Chinese or English headers, rows numbered as a spreadsheet shows
them (the header is row 1), and the row-level problems with their bilingual messages."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from itertools import islice

from backend.errors import AppError

Row = tuple[int, dict[str, str]]

#: Column names several kinds of file share (each file adds its own names).
_OPERATOR_USCC: dict[str, str] = {
    "统一社会信用代码": "operator_uscc",
    "经营者统一社会信用代码": "operator_uscc",
    "operator_uscc": "operator_uscc",
    "uscc": "operator_uscc",
}
_INSTRUMENT: dict[str, str] = {
    "器具码": "instrument_code",
    "计量器具码": "instrument_code",
    "二维码": "instrument_code",
    "instrument_code": "instrument_code",
    "出厂编号": "serial",
    "serial": "serial",
}
_REPORT: dict[str, str] = {
    "日期": "fact_date",
    "fact_date": "fact_date",
    "date": "fact_date",
    "摘要": "summary",
    "summary": "summary",
    "证据": "evidence_refs",
    "证据材料": "evidence_refs",
    "evidence_refs": "evidence_refs",
    "文号": "reference",
    "reference": "reference",
}

VERIFICATION_HEADERS: dict[str, str] = {
    "器具编号": "instrument_id",
    "器具id": "instrument_id",
    "instrument_id": "instrument_id",
    **_INSTRUMENT,
    **_OPERATOR_USCC,
    "检定日期": "verified_on",
    "verified_on": "verified_on",
    "date": "verified_on",
    "检定结果": "passed",
    "检定结论": "passed",
    "结论": "passed",
    "passed": "passed",
    "result": "passed",
    "证书编号": "certificate_no",
    "证书号": "certificate_no",
    "检定证书编号": "certificate_no",
    "certificate_no": "certificate_no",
    "有效期至": "valid_until",
    "valid_until": "valid_until",
    "备注": "notes",
    "notes": "notes",
    "超期使用": "overdue_in_use",
    "overdue_in_use": "overdue_in_use",
}
VERIFICATION_REQUIRED = frozenset({"verified_on", "passed", "certificate_no"})
VERIFICATION_IDENTIFIERS = frozenset({"instrument_id", "instrument_code", "serial"})

ASSOCIATION_HEADERS: dict[str, str] = {
    **_OPERATOR_USCC,
    **_REPORT,
    "措施": "measure",
    "处理措施": "measure",
    "measure": "measure",
    "处理日期": "fact_date",
    "事由": "summary",
    "通报文号": "reference",
}
ASSOCIATION_REQUIRED = frozenset({"operator_uscc", "measure", "fact_date", "summary"})

VIOLATION_HEADERS: dict[str, str] = {
    "违法情形": "kind",
    "违法行为": "kind",
    "情形": "kind",
    "kind": "kind",
    **_OPERATOR_USCC,
    **_INSTRUMENT,
    **_REPORT,
    "发现日期": "fact_date",
    "情况说明": "summary",
    "文书编号": "reference",
}
VIOLATION_REQUIRED = frozenset({"kind", "fact_date", "summary"})
VIOLATION_IDENTIFIERS = frozenset({"operator_uscc", "instrument_code", "serial"})

MEMBERSHIP_HEADERS: dict[str, str] = {
    **_OPERATOR_USCC,
    "会员编号": "member_number",
    "会员号": "member_number",
    "member_number": "member_number",
    "入会日期": "joined_on",
    "加入日期": "joined_on",
    "joined_on": "joined_on",
    "退会日期": "ended_on",
    "退出日期": "ended_on",
    "ended_on": "ended_on",
    "退会原因": "end_reason",
    "退出原因": "end_reason",
    "end_reason": "end_reason",
}
MEMBERSHIP_REQUIRED = frozenset({"operator_uscc", "joined_on"})

TRUE_WORDS = frozenset({"合格", "通过", "pass", "passed", "true", "1", "yes", "y", "是"})
FALSE_WORDS = frozenset({"不合格", "fail", "failed", "false", "0", "no", "n", "否"})

#: code -> (zh, en); ``{value}`` is the offending cell, ``{limit}`` a length.
MESSAGES: dict[str, tuple[str, str]] = {
    "missing_value": ("必填项为空", "a required value is empty"),
    "missing_identifier": (
        "须填写器具编号、器具码或出厂编号之一",
        "give instrument_id, instrument_code or serial",
    ),
    "invalid_number": ("“{value}”不是有效的编号", "{value!r} is not a valid id"),
    "invalid_date": ("“{value}”不是有效日期（应为 YYYY-MM-DD）", "{value!r} is not a date (YYYY-MM-DD)"),
    "invalid_result": ("检定结果“{value}”应为 合格/不合格", "result {value!r} must be pass or fail"),
    "invalid_flag": ("“{value}”应为 是/否", "{value!r} must be yes or no"),
    "value_too_long": ("内容过长（上限 {limit} 字符）", "value longer than {limit} characters"),
    "verification_in_future": ("检定日期晚于今天", "the verification date is in the future"),
    "fact_date_in_future": ("日期晚于今天", "the date is in the future"),
    "invalid_valid_until": ("有效期早于检定日期", "valid_until precedes the verification date"),
    "unknown_instrument": (
        "计量器具不存在或不在本机构服务范围内",
        "no such instrument within your area",
    ),
    "ambiguous_serial": (
        "出厂编号“{value}”对应多台器具，请填写经营者统一社会信用代码",
        "serial {value!r} matches several instruments; add the operator's USCC",
    ),
    "instrument_mismatch": (
        "器具编号、器具码与出厂编号指向不同器具",
        "instrument_id, instrument_code and serial name different instruments",
    ),
    "invalid_instrument_code": ("器具码无效或系伪造", "the instrument code is not genuine"),
    "instrument_code_revoked": ("器具码已作废（已重新打印）", "the instrument code was replaced"),
    "certificate_conflict": (
        "证书编号“{value}”已登记，但检定日期、结果或有效期不同",
        "certificate {value!r} is already recorded with a different date, result or validity",
    ),
    "unknown_operator": (
        "经营者不存在或不在您的范围内",
        "no such operator within your area",
    ),
    "invalid_violation_kind": (
        "违法情形“{value}”无法识别，或不属于检定机构可报告的情形",
        "kind {value!r} is unknown or not one a verification institution may report",
    ),
    "missing_operator_or_instrument": (
        "须填写经营者统一社会信用代码、器具码或出厂编号之一",
        "give the operator's USCC, the instrument code or the serial",
    ),
    "invalid_measure": ("措施“{value}”应为 警告/通报批评", "measure {value!r} must be warning or censure"),
    "too_many_evidence_refs": ("证据材料最多 {limit} 项", "at most {limit} evidence references"),
    "control_character": ("内容含有控制字符", "the value contains a control character"),
    "operator_inactive": (
        "经营者已停用，不能登记为会员",
        "the operator is inactive and cannot become a member",
    ),
    "joined_on_in_future": ("入会日期晚于今天", "the joining date is in the future"),
    "ended_on_in_future": ("退会日期晚于今天", "the end date is in the future"),
    "ended_before_joined": ("退会日期早于入会日期", "the end date precedes the joining date"),
    "already_member": ("该经营者已是本组织的在册会员", "the operator is already your current member"),
    "membership_overlap": (
        "与该经营者已登记的会员期间重叠",
        "overlaps a membership period already registered for this operator",
    ),
    "membership_conflict": (
        "已登记同一入会日期的会员，但会员编号或退会信息不同",
        "a membership from this joining date is registered with a different number or end",
    ),
    "not_a_member": (
        "该经营者在 {value} 不是本组织的会员，请先登记会员",
        "the operator was not your member on {value}; register the membership first",
    ),
}


@dataclass(frozen=True)
class RowProblem:
    """Why one row (or one cell) was not imported."""

    row: int
    column: str | None
    code: str
    message_zh: str
    message_en: str


def problem(row: int, column: str | None, code: str, value: str = "", limit: int = 0) -> RowProblem:
    """A row problem with its messages filled in."""
    zh, en = MESSAGES[code]
    return RowProblem(
        row, column, code, zh.format(value=value, limit=limit), en.format(value=value, limit=limit)
    )


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding of an upload: UTF-8 with or without BOM, else GB18030 (Excel on Chinese Windows)."""
    body, encoding = (data[3:], "utf-8-sig") if data.startswith(b"\xef\xbb\xbf") else (data, "utf-8")
    # Strict UTF-8 rarely decodes GB18030 text by accident, so it goes first; GB18030 takes everything else.
    with contextlib.suppress(UnicodeDecodeError):
        return body.decode("utf-8"), encoding
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        raise AppError(
            415,
            "unsupported_encoding",
            "文件编码无法识别，请使用 UTF-8 或 GB18030",
            "unreadable encoding; use UTF-8 or GB18030",
        ) from None


def _canonical(header: str, aliases: dict[str, str]) -> str:
    name = header.strip().lstrip("\ufeff").strip()
    return aliases.get(name, aliases.get(name.lower(), name.lower()))


def header(text: str, aliases: dict[str, str], required: frozenset[str], one_of: frozenset[str]) -> list[str]:
    """The canonical column names of a file; 422 when it is empty or lacks required columns."""
    first = next(csv.reader(io.StringIO(text)), None)
    if not first or not any(cell.strip() for cell in first):
        raise AppError(422, "empty_csv", "CSV 文件为空", "the CSV file is empty")
    names = [_canonical(h, aliases) for h in first]
    missing = sorted(required - set(names))
    if one_of and not one_of & set(names):
        missing.append(" | ".join(sorted(one_of)))
    if missing:
        raise AppError(
            422,
            "missing_columns",
            "CSV 缺少必需的列",
            "the CSV lacks required columns",
            {"missing": missing, "accepted": sorted(set(aliases))},
        )
    return names


def rows(text: str, names: list[str]) -> Iterator[Row]:
    """(row number, {column: stripped value}) for every non-blank data row; the header is row 1."""
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    for index, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        yield index, {name: cell.strip() for name, cell in zip(names, cells, strict=False)}


def date_cell(
    number: int, raw: dict[str, str], column: str, problems: list[RowProblem], *, required: bool = False
) -> date | None:
    """A date cell of a row, or None; a missing (when required) or unreadable date is added to ``problems``."""
    value = raw.get(column, "")
    if not value:
        if required:
            problems.append(problem(number, column, "missing_value"))
        return None
    try:
        return parse_date(value)
    except ValueError:
        problems.append(problem(number, column, "invalid_date", value))
        return None


def control_characters(number: int, raw: dict[str, str]) -> list[RowProblem]:
    """A problem for each cell holding a control character other than tab and line breaks: no value we keep
    has one, and PostgreSQL refuses NUL in text outright (one bad cell must stay one row's error).
    """
    return [
        problem(number, column, "control_character")
        for column, value in raw.items()
        if any(ord(c) < 32 and c not in "\t\r\n" for c in value)
    ]


def chunks(it: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Consecutive lists of up to ``size`` rows."""
    while chunk := list(islice(it, size)):
        yield chunk


def parse_date(value: str) -> date:
    """YYYY-MM-DD, also with slashes or dots, or YYYYMMDD; ValueError otherwise."""
    text = value.strip().replace("/", "-").replace(".", "-")
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    parts = text.split("-")
    if len(parts) != 3:
        raise ValueError(value)
    return date(int(parts[0]), int(parts[1]), int(parts[2]))


def parse_flag(value: str) -> bool | None:
    """Yes/no words (是/否, true/false, 1/0); None for an empty cell; ValueError otherwise."""
    word = value.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(value)
