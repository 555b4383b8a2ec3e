"""Our SMS templates as data: which notice kinds may go by SMS, the text Aliyun approved, and its variables.

Chinese SMS carries only pre-approved templates with named variables under a registered signature (签名).
A deployment submits each ``content`` below for approval and sets the code Aliyun assigns
(``GONGPING_SMS_TEMPLATE_CODES={"interview_summons": "SMS_4711…", …}``); only these kinds are ever sent.

Variable limits: Aliyun's notification templates take each variable value as a string of at most
:data:`MAX_VARIABLE_LENGTH` characters (the "others" property; a Chinese character counts as one), and refuse
the whole message otherwise. Values are checked here before anything is sent: input that reaches a variable
from the API (an interview's place) is refused with 422 ``sms_variable_too_long``; a value that does not come
from input (a long bureau name) makes a refused send, recorded with its reason for staff to see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from backend.config import get_settings
from backend.errors import AppError

#: Aliyun: a notification variable value is at most 35 characters (TemplateRule "others"; times and numbers
#: are shorter by their own format). Counted in characters, as Aliyun counts them.
MAX_VARIABLE_LENGTH = 35

VariableKind = Literal["text", "time", "date", "number"]


@dataclass(frozen=True, slots=True)
class SmsVariable:
    """One ``${name}`` of a template, filled from the notice context key ``source``."""

    name: str
    source: str
    kind: VariableKind = "text"
    max_length: int = MAX_VARIABLE_LENGTH


@dataclass(frozen=True, slots=True)
class SmsTemplate:
    """One approved template: our key, the notice kinds it carries, its text and its variables."""

    key: str
    kinds: tuple[str, ...]
    content: str
    variables: tuple[SmsVariable, ...]
    #: Labels for coded context values (an outcome code becomes words).
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))


_BUREAU = SmsVariable("bureau", "bureau_name")

TEMPLATES: tuple[SmsTemplate, ...] = (
    SmsTemplate(
        "interview_summons",
        ("interview_scheduled",),
        "${bureau}定于${time}约谈贵单位，地点：${place}。请准时到场，详情请查看“公平”App。",
        (_BUREAU, SmsVariable("time", "scheduled_at", "time"), SmsVariable("place", "place")),
    ),
    SmsTemplate(
        "interview_cancelled",
        ("interview_cancelled",),
        "${bureau}原定于${time}对贵单位的约谈已取消，详情请查看“公平”App。",
        (_BUREAU, SmsVariable("time", "scheduled_at", "time")),
    ),
    SmsTemplate(
        "verification_overdue",
        ("verification_overdue",),
        "贵单位的计量器具${instrument}检定有效期已于${date}届满，依法不得继续使用，请尽快申请检定。",
        (SmsVariable("instrument", "instrument_name"), SmsVariable("date", "valid_until", "date")),
    ),
    SmsTemplate(
        "mediation_ended",
        ("complaint_handling_ended",),
        "${bureau}对投诉案件${case_no}的调解已结束（${outcome}），详情请查看“公平”App。",
        (_BUREAU, SmsVariable("case_no", "case_no", "number"), SmsVariable("outcome", "outcome")),
        labels=MappingProxyType(
            {"outcome": MappingProxyType({"mediated": "调解达成", "terminated": "终止调解"})}
        ),
    ),
    SmsTemplate(
        "record_published",
        ("record_published",),
        "${bureau}已依法公示贵单位${date}的诚信计量记录，如有异议可在“公平”App申请更正。",
        (_BUREAU, SmsVariable("date", "fact_date", "date")),
    ),
)

#: The template of each notice kind that may go by SMS; every other kind never does.
BY_KIND: Mapping[str, SmsTemplate] = MappingProxyType({k: t for t in TEMPLATES for k in t.kinds})
BY_KEY: Mapping[str, SmsTemplate] = MappingProxyType({t.key: t for t in TEMPLATES})


class VariableTooLong(ValueError):
    """A value longer than the provider takes for its variable."""

    def __init__(self, template: str, variable: str, length: int, limit: int) -> None:
        super().__init__(f"{template}.{variable}: {length} > {limit} characters")
        self.template, self.variable, self.length, self.limit = template, variable, length, limit


def sms_kind(kind: str) -> bool:
    """Whether notices of ``kind`` may go by SMS."""
    return kind in BY_KIND


def params_for(kind: str, context: Mapping[str, str]) -> dict[str, str]:
    """The template's variables from a notice context already in Chinese text; raises VariableTooLong."""
    template = BY_KIND[kind]
    params: dict[str, str] = {}
    for variable in template.variables:
        raw = str(context.get(variable.source, ""))
        value = template.labels.get(variable.name, {}).get(raw, raw).strip()
        if not value or len(value) > variable.max_length:
            raise VariableTooLong(template.key, variable.name, len(value), variable.max_length)
        params[variable.name] = value
    return params


def check_input(kind: str, values: Mapping[str, str]) -> None:
    """Refuse API input that would make a notice of ``kind`` unsendable by SMS (422), when SMS is on."""
    if not get_settings().sms_enabled or kind not in BY_KIND:
        return
    for variable in BY_KIND[kind].variables:
        value = values.get(variable.source)
        if value is not None and len(value.strip()) > variable.max_length:
            raise AppError(
                422,
                "sms_variable_too_long",
                f"“{variable.source}”超过短信模板变量的长度上限（{variable.max_length} 个字符）",
                f"'{variable.source}' is longer than the SMS template variable allows "
                f"({variable.max_length} characters)",
                {"field": variable.source, "length": len(value.strip()), "limit": variable.max_length},
            )


def missing_codes() -> list[str]:
    """Templates without an Aliyun code in the settings (SMS cannot be on without them)."""
    codes = get_settings().sms_template_codes
    return [t.key for t in TEMPLATES if not codes.get(t.key)]
