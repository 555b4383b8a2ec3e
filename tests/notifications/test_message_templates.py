"""Message kinds: rendering in zh-CN and English, strict context, privacy of complainants."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from notifications.channels import DEEP_LINK_KEY
from notifications.templates import (
    KINDS,
    ForbiddenContextError,
    TemplateError,
    _placeholders,
    is_identifying_key,
    render,
    resolve_locale,
)

SAMPLE_CONTEXT: dict[str, dict[str, Any]] = {
    "verification_due": {
        "instrument_id": "ins-1",
        "instrument_name": "电子计价秤 #3",
        "valid_until": date(2026, 12, 31),
        "days_left": 7,
    },
    "verification_overdue": {
        "instrument_id": "ins-1",
        "instrument_name": "加油机 2号",
        "valid_until": date(2026, 1, 1),
    },
    "interview_scheduled": {
        "interview_id": "iv-1",
        "bureau_name": "西湖区市场监督管理局",
        "scheduled_at": "2026-12-01 09:30",
        "place": "三楼会议室",
    },
    "interview_reminder": {
        "interview_id": "iv-1",
        "scheduled_at": "2026-12-01 09:30",
        "place": "三楼会议室",
        "lead": "1h",
    },
    "interview_cancelled": {
        "interview_id": "iv-1",
        "bureau_name": "西湖区市场监督管理局",
        "scheduled_at": "2026-12-01 09:30",
    },
    "reminder_notice": {"interview_id": "iv-2", "bureau_name": "西湖区市场监督管理局"},
    "finding_against_operator": {
        "finding_id": "fd-1",
        "bureau_name": "西湖区市场监督管理局",
        "record_kind": "short_weight",
        "decided_on": date(2026, 11, 2),
    },
    "rating_changed": {
        "operator_id": "op-1",
        "old_class": "trustworthy",
        "new_class": "untrustworthy",
        "effective_on": date(2026, 11, 3),
    },
    "correction_decided": {"correction_id": "cr-1", "decision": "approved", "decided_on": date(2026, 11, 4)},
    "correction_requested": {
        "correction_id": "12",
        "operator_name": "西溪菜场",
        "due_on": date(2026, 11, 20),
    },
    "record_published": {
        "record_id": "41",
        "record_kind": "short_weight",
        "fact_date": date(2026, 10, 30),
        "bureau_name": "西湖区市场监督管理局",
    },
    "record_unpublished": {
        "record_id": "41",
        "record_kind": "short_weight",
        "fact_date": date(2026, 10, 30),
        "bureau_name": "西湖区市场监督管理局",
        "cause": "corrected",
    },
    "findings_against_operator": {
        "finding_id": "fd-2",
        "bureau_name": "西湖区市场监督管理局",
        "record_kinds": "complaint_substantiated,short_weight",
        "decided_on": date(2026, 11, 2),
    },
    "complaint_received": {
        "complaint_ref": "123",
        "case_no": "TS202600000123",
        "received_on": date(2026, 11, 5),
    },
    "complaint_outcome": {"complaint_ref": "123", "case_no": "TS202600000123", "outcome": "substantiated"},
    "filing_accepted": {
        "complaint_ref": "123",
        "case_no": "TS202600000123",
        "filing": "complaint",
        "bureau_name": "西湖区市场监督管理局",
    },
    "filing_rejected": {
        "complaint_ref": "123",
        "case_no": "TS202600000123",
        "filing": "complaint",
        "bureau_name": "西湖区市场监督管理局",
        "reason": "不属于计量监督管理事项",
    },
    "filing_transferred": {
        "complaint_ref": "88",
        "case_no": "JB202600000088",
        "filing": "report",
        "bureau_name": "上城区市场监督管理局",
    },
    "filing_escalated": {
        "complaint_ref": "123",
        "case_no": "TS202600000123",
        "filing": "complaint",
        "bureau_name": "杭州市市场监督管理局",
        "due_on": date(2026, 11, 12),
    },
    "complaint_handling_ended": {
        "case_no": "TS202600000123",
        "outcome": "terminated",
        "bureau_name": "西湖区市场监督管理局",
        "decided_on": date(2026, 11, 20),
    },
    "supervisor_report_outcome": {"report_id": "rp-1", "case_no": "JB202600000088", "outcome": "adopted"},
    "case_assigned": {"case_id": "cs-1", "case_no": "AJ-2026-0042", "due_on": date(2026, 11, 12)},
    "case_overdue": {"case_id": "cs-1", "case_no": "AJ-2026-0042", "due_on": date(2026, 11, 12)},
    "correction_overdue": {"correction_id": "17", "due_on": date(2026, 11, 12)},
}


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLE_CONTEXT) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_kind_renders_in_both_locales(kind: str, locale: str) -> None:
    message = render(kind, locale, SAMPLE_CONTEXT[kind])

    assert message.locale == locale
    assert message.title and message.body
    assert "{" not in message.title + message.body and "}" not in message.title + message.body
    assert message.deep_link.startswith("gongping://")
    assert message.collapse_key and len(message.collapse_key.encode()) <= 64
    assert message.data() == {
        "kind": kind,
        "category": KINDS[kind].category,
        DEEP_LINK_KEY: message.deep_link,
    }


def test_chinese_and_english_wording() -> None:
    context = SAMPLE_CONTEXT["verification_due"]

    zh = render("verification_due", "zh-CN", context)
    en = render("verification_due", "en", context)

    assert zh.title == "计量器具检定即将到期"
    assert "电子计价秤 #3" in zh.body and "2026-12-31" in zh.body and "剩余7天" in zh.body
    assert en.title == "Instrument verification due soon"
    assert "days left: 7" in en.body


def test_interview_cancellation_and_written_reminder_wording() -> None:
    zh = render("interview_cancelled", "zh-CN", SAMPLE_CONTEXT["interview_cancelled"])
    en = render("interview_cancelled", "en", SAMPLE_CONTEXT["interview_cancelled"])
    assert zh.title == "约谈取消通知" and "2026-12-01 09:30" in zh.body and "已取消" in zh.body
    assert en.title == "Interview cancelled" and "2026-12-01 09:30" in en.body
    # The cancellation replaces the summons on the phone: same collapse key as interview_scheduled.
    summons = render("interview_scheduled", "zh-CN", SAMPLE_CONTEXT["interview_scheduled"])
    assert zh.collapse_key == summons.collapse_key == "interview:iv-1"

    reminder = render("reminder_notice", "zh-CN", SAMPLE_CONTEXT["reminder_notice"])
    assert reminder.title == "计量诚信提醒" and "书面提醒" in reminder.body and "西湖区" in reminder.body
    assert reminder.deep_link == "gongping://interviews/iv-2" and reminder.priority == "high"
    assert render("reminder_notice", "en", SAMPLE_CONTEXT["reminder_notice"]).title == (
        "Metrology integrity reminder"
    )


def test_codes_are_translated_through_labels() -> None:
    zh = render("rating_changed", "zh-CN", SAMPLE_CONTEXT["rating_changed"])
    en = render("rating_changed", "en", SAMPLE_CONTEXT["rating_changed"])

    assert "由“守信”调整为“失信”" in zh.body
    assert 'from "trustworthy" to "untrustworthy"' in en.body


def test_publication_wording_names_the_record_its_new_standing_and_the_correction_right() -> None:
    published = SAMPLE_CONTEXT["record_published"]
    zh = render("record_published", "zh-CN", published)
    en = render("record_published", "en", published)
    assert zh.title == "计量诚信信息已向社会公开"
    assert "缺斤短两（日期：2026-10-30）" in zh.body and "已依法向社会公开" in zh.body
    assert "可在应用内向西湖区市场监督管理局申请更正或撤销" in zh.body
    assert en.title == "Integrity information made public"
    assert "short weight (dated 2026-10-30)" in en.body and "disclosed to the public" in en.body
    assert "ask 西湖区市场监督管理局 in the app to correct or revoke it" in en.body

    ended = SAMPLE_CONTEXT["record_unpublished"]
    zh = render("record_unpublished", "zh-CN", ended)
    en = render("record_unpublished", "en", ended)
    assert zh.title == "计量诚信信息已停止公开" and "已不再向社会公开：缺斤短两" in zh.body
    assert "原因：该记录已更正，更正后的内容须重新审核后方可公开。" in zh.body and "申请更正" in zh.body
    assert en.title == "Integrity information no longer public"
    assert "Reason: the record was corrected;" in en.body and "correct or revoke it" in en.body
    taken_down = render("record_unpublished", "en", {**ended, "cause": "unpublished"})
    assert "Reason: taken down by the market regulation bureau." in taken_down.body

    # The app's record screen (where a correction is asked for); the latest state replaces the earlier one.
    for kind in ("record_published", "record_unpublished"):
        message = render(kind, "zh-CN", SAMPLE_CONTEXT[kind])
        assert message.deep_link == "gongping://findings/41" and message.collapse_key == "publication:41"
        assert message.category == "publication" and not message.mutable and message.priority == "high"


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh_Hans_CN", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("fr-FR", "zh-CN"),
        ("en", "en"),
        ("en_US", "en"),
        ("EN-gb", "en"),
    ],
)
def test_locale_falls_back_to_simplified_chinese(requested: str | None, resolved: str) -> None:
    assert resolve_locale(requested) == resolved
    assert render("case_assigned", requested, SAMPLE_CONTEXT["case_assigned"]).locale == resolved


@pytest.mark.parametrize(
    "key",
    [
        "complainant_name",
        "complainant_contact",
        "complainant_phone",
        "complainant_id",
        "phone",
        "contact",
        "email",
    ],
)
def test_finding_against_operator_refuses_complainant_fields(key: str) -> None:
    context = {**SAMPLE_CONTEXT["finding_against_operator"], key: "张三 13800000000"}

    with pytest.raises(ForbiddenContextError, match=key):
        render("finding_against_operator", "zh-CN", context)


@pytest.mark.parametrize("kind", sorted(k for k, spec in KINDS.items() if spec.audience == "operator"))
def test_every_operator_facing_kind_refuses_identity(kind: str) -> None:
    with pytest.raises(ForbiddenContextError):
        render(kind, "en", {**SAMPLE_CONTEXT[kind], "reporter_name": "李四"})


def test_complainant_facing_kinds_are_not_subject_to_the_operator_rule() -> None:
    # Unknown keys are still refused; the error is the generic one, not a privacy violation.
    with pytest.raises(TemplateError) as raised:
        render("complaint_outcome", "en", {**SAMPLE_CONTEXT["complaint_outcome"], "complainant_name": "x"})
    assert not isinstance(raised.value, ForbiddenContextError)


@pytest.mark.parametrize(
    "key",
    [
        "complainant_name",
        "complainants",
        "supervisor_id",
        "mobile_no",
        "home_address",
        "id_card",
        "wechat_id",
    ],
)
def test_identifying_keys(key: str) -> None:
    assert is_identifying_key(key)


@pytest.mark.parametrize("key", ["instrument_name", "bureau_name", "case_no", "finding_id", "place"])
def test_ordinary_keys(key: str) -> None:
    assert not is_identifying_key(key)


def test_missing_context_is_refused() -> None:
    context = dict(SAMPLE_CONTEXT["interview_scheduled"])
    del context["place"]

    with pytest.raises(TemplateError, match="missing context \\['place'\\]"):
        render("interview_scheduled", "zh-CN", context)


def test_unexpected_context_is_refused() -> None:
    with pytest.raises(TemplateError, match="unexpected context \\['note'\\]"):
        render("case_overdue", "zh-CN", {**SAMPLE_CONTEXT["case_overdue"], "note": "hi"})


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 1, 1, 9, 0), True, 3.5, None, "", "  ", "line\nbreak", "x" * 201],
)
def test_bad_values_are_refused(value: object) -> None:
    with pytest.raises(TemplateError):
        render("case_overdue", "zh-CN", {**SAMPLE_CONTEXT["case_overdue"], "case_no": value})


def test_unknown_label_code_and_unknown_kind_are_refused() -> None:
    with pytest.raises(TemplateError, match="record_kind"):
        render(
            "finding_against_operator",
            "en",
            {**SAMPLE_CONTEXT["finding_against_operator"], "record_kind": "x"},
        )
    with pytest.raises(TemplateError, match="unknown message kind"):
        render("birthday_greeting", "en", {})


def test_identifiers_are_percent_encoded_in_links_and_keys() -> None:
    message = render("case_assigned", "en", {**SAMPLE_CONTEXT["case_assigned"], "case_id": "a/b?c=d"})

    assert message.deep_link == "gongping://cases/a%2Fb%3Fc%3Dd"
    assert message.collapse_key == "case:a%2Fb%3Fc%3Dd"


def test_overlong_collapse_key_is_refused() -> None:
    with pytest.raises(TemplateError, match="collapse key"):
        render("case_assigned", "en", {**SAMPLE_CONTEXT["case_assigned"], "case_id": "c" * 80})


@pytest.mark.parametrize("template", ["{a.b}", "{a[0]}", "{a!r}", "{a:>9}", "{0}", "{}"])
def test_template_placeholders_must_be_plain_names(template: str) -> None:
    with pytest.raises(TemplateError):
        _placeholders(template)


def test_kind_decisions() -> None:
    required = {kind for kind, spec in KINDS.items() if not spec.mutable}
    urgent = {kind for kind, spec in KINDS.items() if spec.urgent}

    assert {
        "interview_scheduled",
        "interview_reminder",
        "interview_cancelled",
        "reminder_notice",
        "finding_against_operator",
        "record_published",
        "record_unpublished",
    } <= required
    assert "verification_due" not in required
    assert urgent == {"interview_reminder"}
    assert all(KINDS[kind].priority == "high" for kind in required | urgent)
    assert KINDS["interview_reminder"].ttl_seconds == 3600


def test_labels_cover_the_backend_vocabulary() -> None:
    rules = pytest.importorskip("backend.records.rules")
    positive = {rules.RecordKind.COMMITMENT_KEPT, rules.RecordKind.DEMONSTRATION_UNIT}

    for kind in set(rules.RecordKind) - positive:
        render(
            "finding_against_operator",
            "zh-CN",
            {**SAMPLE_CONTEXT["finding_against_operator"], "record_kind": kind.value},
        )
    # Good records are published too: every kind has words in both languages.
    for kind in rules.RecordKind:
        for locale in ("zh-CN", "en"):
            body = render(
                "record_published", locale, {**SAMPLE_CONTEXT["record_published"], "record_kind": kind.value}
            ).body
            assert kind.value not in body
    for cause in ("unpublished", "corrected", "revoked", "dismissed", "changed"):
        for locale in ("zh-CN", "en"):
            render("record_unpublished", locale, {**SAMPLE_CONTEXT["record_unpublished"], "cause": cause})
    for cls in rules.IntegrityClass:
        render("rating_changed", "en", {**SAMPLE_CONTEXT["rating_changed"], "new_class": cls.value})


@pytest.mark.parametrize(
    ("locale", "joined"), [("zh-CN", "消费者投诉经查属实、缺斤短两"), ("en", "short weight")]
)
def test_a_list_of_record_kinds_is_translated_and_joined(locale: str, joined: str) -> None:
    message = render("findings_against_operator", locale, SAMPLE_CONTEXT["findings_against_operator"])
    assert joined in message.body and "short_weight" not in message.body


def test_an_unknown_code_in_a_list_is_refused() -> None:
    context = {**SAMPLE_CONTEXT["findings_against_operator"], "record_kinds": "short_weight,made_up"}
    with pytest.raises(TemplateError):
        render("findings_against_operator", "zh-CN", context)


@pytest.mark.parametrize(
    ("filing", "zh", "en"),
    [("complaint", "您的投诉", "Your complaint"), ("report", "您的监督报告", "Your supervision report")],
)
def test_filer_notices_say_what_was_filed(filing: str, zh: str, en: str) -> None:
    context = {**SAMPLE_CONTEXT["filing_accepted"], "filing": filing}
    assert render("filing_accepted", "zh-CN", context).body.startswith(zh)
    assert render("filing_accepted", "en", context).body.startswith(en)
