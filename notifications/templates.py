"""Message kinds and their rendering in Simplified Chinese and English.

Each kind's behaviour is code (:data:`KINDS`, reviewed like any policy); its wording is data
(``templates/<locale>.json``, edited by translators). The catalog is validated at import, so a broken
template stops a worker at start-up rather than at 22:00 on a reminder run.

Decisions per kind (mutable: the recipient may mute its push; the inbox always gets everything.
urgent: ignores quiet hours):

    kind                       audience     category      mutable  urgent  why
    verification_due           operator     verification  yes      no      a courtesy reminder
    verification_overdue       operator     verification  no       no      using the instrument is now unlawful
    interview_scheduled        operator     enforcement   no       no      summons to an interview (约谈)
    interview_reminder         operator     enforcement   no       yes     worthless once the interview began
    interview_cancelled        operator     enforcement   no       no      the summons no longer stands
    reminder_notice            operator     enforcement   no       no      a written reminder (提醒, Art. 12(2))
    finding_against_operator   operator     enforcement   no       no      enters the record, opens Art. 22
    findings_against_operator  operator     enforcement   no       no      one decision's findings, one notice
    rating_changed             operator     rating        no       no      a class change must be notified
    correction_decided         operator     correction    no       no      formal answer to an Art. 22 request
    correction_requested       staff        case_work     yes      no      an Art. 22 request waits for a decision
    record_published           operator     publication   no       no      disclosed to the public, opens Art. 22
    record_unpublished         operator     publication   no       no      the public no longer sees the record
    complaint_received         complainant  complaint     yes      no      acknowledgement, kept in the inbox
    complaint_outcome          complainant  complaint     yes      no      kept in the inbox
    filing_accepted            complainant  complaint     no       no      the acceptance decision owed the filer
    filing_rejected            complainant  complaint     no       no      the refusal owed the filer, with why
    filing_transferred         complainant  complaint     no       no      another bureau decides afresh
    filing_escalated           complainant  complaint     yes      no      a deadline passed, the parent supervises
    complaint_handling_ended   operator     enforcement   no       no      end of mediation, both parties told
    supervisor_report_outcome  supervisor   supervision   yes      no      feedback to a volunteer
    case_assigned              staff        case_work     yes      no      work-queue notice
    case_overdue               staff        case_work     no       no      a statutory deadline has passed
    correction_overdue         staff        case_work     no       no      an Art. 22 decision ran late

The filing_* kinds go to whoever filed, a consumer or a volunteer supervisor (``filing`` says which, in
words), and name the case number (TS…/JB…), never an internal id; the id stays in the deep link only.

Interviews are held in office hours, so holding other notices until 08:00 still delivers them in time;
only the interview reminder is time-boxed tightly enough (an 08:00 interview's 1-hour reminder falls at
07:00) to be urgent.

Operator-facing kinds may never carry anything identifying a complainant or supervisor (Art. 18):
such context keys are refused with :class:`ForbiddenContextError`, and such placeholders are refused
when the catalog loads.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

from notifications.channels import DEEP_LINK_KEY, Priority

Audience = Literal["operator", "complainant", "supervisor", "staff"]

DEFAULT_LOCALE = "zh-CN"
SUPPORTED_LOCALES = ("zh-CN", "en")
DEEP_LINK_SCHEME = "gongping://"
# Keeps one context value from blowing the 4 KB FCM payload limit or smuggling a paragraph in.
MAX_VALUE_LENGTH = 200
# APNs caps apns-collapse-id at 64 bytes; keeping every collapse key within it avoids per-platform keys.
MAX_COLLAPSE_KEY_LENGTH = 64

#: How a list of labels is joined in each locale.
_LIST_SEPARATORS = MappingProxyType({"zh-CN": "、", "en": "; "})
_HOUR = 3600
_DAY = 24 * _HOUR
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Name parts that mark a key as identifying a person other than the operator.
_IDENTITY_TOKENS = frozenset(
    {
        "complainant",
        "complainants",
        "reporter",
        "filer",
        "whistleblower",
        "supervisor",
        "consumer",
        "phone",
        "mobile",
        "tel",
        "contact",
        "email",
        "wechat",
        "address",
        "idcard",
    }
)
_IDENTITY_KEYS = frozenset({"id_card", "id_number", "real_name", "person_name"})


class TemplateError(ValueError):
    """A kind, locale or context that cannot be rendered."""


class ForbiddenContextError(TemplateError):
    """Context that would disclose a complainant's (or supervisor's) identity to an operator."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Behaviour of one message kind; ``fields`` are the context keys ``render`` requires."""

    kind: str
    audience: Audience
    category: str
    mutable: bool
    urgent: bool
    ttl_seconds: int
    priority: Priority
    collapse_key: str
    deep_link: str
    fields: tuple[str, ...]
    # Fields whose value is a code translated through the locale's label group of that name.
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Fields whose value is comma-separated codes, each translated through the group, joined by the locale.
    label_lists: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message ready for any channel: localized text plus the kind's delivery attributes."""

    kind: str
    locale: str
    title: str
    body: str
    deep_link: str
    collapse_key: str
    category: str
    ttl_seconds: int
    priority: Priority
    urgent: bool
    mutable: bool

    def data(self) -> dict[str, str]:
        """The push data payload: what the app needs to route the tap, nothing personal."""
        return {"kind": self.kind, "category": self.category, DEEP_LINK_KEY: self.deep_link}


def _spec(
    kind: str,
    audience: Audience,
    category: str,
    *,
    mutable: bool,
    urgent: bool = False,
    ttl_seconds: int,
    collapse_key: str,
    deep_link: str,
    fields: tuple[str, ...],
    labels: Mapping[str, str] | None = None,
    label_lists: Mapping[str, str] | None = None,
) -> KindSpec:
    # Required notices and urgent ones go out with high priority so Doze does not delay them.
    priority: Priority = "high" if urgent or not mutable else "normal"
    return KindSpec(
        kind=kind,
        audience=audience,
        category=category,
        mutable=mutable,
        urgent=urgent,
        ttl_seconds=ttl_seconds,
        priority=priority,
        collapse_key=collapse_key,
        deep_link=deep_link,
        fields=fields,
        labels=MappingProxyType(dict(labels or {})),
        label_lists=MappingProxyType(dict(label_lists or {})),
    )


KINDS: Mapping[str, KindSpec] = MappingProxyType(
    {
        spec.kind: spec
        for spec in (
            _spec(
                "verification_due",
                "operator",
                "verification",
                mutable=True,
                ttl_seconds=3 * _DAY,
                collapse_key="verification:{instrument_id}",
                deep_link="gongping://instruments/{instrument_id}",
                fields=("instrument_id", "instrument_name", "valid_until", "days_left"),
            ),
            _spec(
                "verification_overdue",
                "operator",
                "verification",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="verification:{instrument_id}",
                deep_link="gongping://instruments/{instrument_id}",
                fields=("instrument_id", "instrument_name", "valid_until"),
            ),
            _spec(
                "interview_scheduled",
                "operator",
                "enforcement",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="interview:{interview_id}",
                deep_link="gongping://interviews/{interview_id}",
                fields=("interview_id", "bureau_name", "scheduled_at", "place"),
            ),
            _spec(
                "interview_reminder",
                "operator",
                "enforcement",
                mutable=False,
                urgent=True,
                ttl_seconds=_HOUR,
                collapse_key="interview:{interview_id}:reminder",
                deep_link="gongping://interviews/{interview_id}",
                fields=("interview_id", "scheduled_at", "place", "lead"),
                labels={"lead": "reminder_lead"},
            ),
            _spec(
                "interview_cancelled",
                "operator",
                "enforcement",
                mutable=False,
                ttl_seconds=7 * _DAY,
                # Same key as the summons: on the phone the cancellation replaces it.
                collapse_key="interview:{interview_id}",
                deep_link="gongping://interviews/{interview_id}",
                fields=("interview_id", "bureau_name", "scheduled_at"),
            ),
            _spec(
                "reminder_notice",
                "operator",
                "enforcement",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="interview:{interview_id}",
                deep_link="gongping://interviews/{interview_id}",
                fields=("interview_id", "bureau_name"),
            ),
            _spec(
                "finding_against_operator",
                "operator",
                "enforcement",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="finding:{finding_id}",
                deep_link="gongping://findings/{finding_id}",
                fields=("finding_id", "bureau_name", "record_kind", "decided_on"),
                labels={"record_kind": "record_kind"},
            ),
            # One decision (a substantiated case, a failed inspection) is one notice, whatever number of
            # record kinds it finds: ``record_kinds`` lists their codes.
            _spec(
                "findings_against_operator",
                "operator",
                "enforcement",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="finding:{finding_id}",
                deep_link="gongping://findings/{finding_id}",
                fields=("finding_id", "bureau_name", "record_kinds", "decided_on"),
                label_lists={"record_kinds": "record_kind"},
            ),
            _spec(
                "rating_changed",
                "operator",
                "rating",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="rating:{operator_id}",
                deep_link="gongping://operators/{operator_id}/rating",
                fields=("operator_id", "old_class", "new_class", "effective_on"),
                labels={"old_class": "integrity_class", "new_class": "integrity_class"},
            ),
            _spec(
                "correction_decided",
                "operator",
                "correction",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="correction:{correction_id}",
                deep_link="gongping://corrections/{correction_id}",
                fields=("correction_id", "decision", "decided_on"),
                labels={"decision": "correction_decision"},
            ),
            # The deep link is the app's screen of one of the operator's records (the finding screen, by
            # record id): the operator asks for a correction from there. Both kinds share a collapse key,
            # so on the phone the latest state of a record's publication replaces the earlier one.
            _spec(
                "record_published",
                "operator",
                "publication",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="publication:{record_id}",
                deep_link="gongping://findings/{record_id}",
                fields=("record_id", "record_kind", "fact_date", "bureau_name"),
                labels={"record_kind": "record_kind"},
            ),
            _spec(
                "record_unpublished",
                "operator",
                "publication",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="publication:{record_id}",
                deep_link="gongping://findings/{record_id}",
                fields=("record_id", "record_kind", "fact_date", "bureau_name", "cause"),
                labels={"record_kind": "record_kind", "cause": "publication_end"},
            ),
            _spec(
                "complaint_received",
                "complainant",
                "complaint",
                mutable=True,
                ttl_seconds=3 * _DAY,
                collapse_key="complaint:{complaint_ref}",
                deep_link="gongping://complaints/{complaint_ref}",
                fields=("complaint_ref", "case_no", "received_on"),
            ),
            _spec(
                "complaint_outcome",
                "complainant",
                "complaint",
                mutable=True,
                ttl_seconds=7 * _DAY,
                collapse_key="complaint:{complaint_ref}",
                deep_link="gongping://complaints/{complaint_ref}",
                fields=("complaint_ref", "case_no", "outcome"),
                labels={"outcome": "complaint_outcome"},
            ),
            # Order No. 20 has the filer told whether the complaint is accepted, and if not, why; a transfer
            # starts the receiving bureau's decision afresh; an overdue case is supervised from above.
            _spec(
                "filing_accepted",
                "complainant",
                "complaint",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="complaint:{complaint_ref}",
                deep_link="gongping://complaints/{complaint_ref}",
                fields=("complaint_ref", "case_no", "filing", "bureau_name"),
                labels={"filing": "filing"},
            ),
            _spec(
                "filing_rejected",
                "complainant",
                "complaint",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="complaint:{complaint_ref}",
                deep_link="gongping://complaints/{complaint_ref}",
                fields=("complaint_ref", "case_no", "filing", "bureau_name", "reason"),
                labels={"filing": "filing"},
            ),
            _spec(
                "filing_transferred",
                "complainant",
                "complaint",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="complaint:{complaint_ref}",
                deep_link="gongping://complaints/{complaint_ref}",
                fields=("complaint_ref", "case_no", "filing", "bureau_name"),
                labels={"filing": "filing"},
            ),
            _spec(
                "filing_escalated",
                "complainant",
                "complaint",
                mutable=True,
                ttl_seconds=7 * _DAY,
                collapse_key="complaint:{complaint_ref}",
                deep_link="gongping://complaints/{complaint_ref}",
                fields=("complaint_ref", "case_no", "filing", "bureau_name", "due_on"),
                labels={"filing": "filing"},
            ),
            # Order No. 20 Art. 21: the decision to end mediation is told to the complainant and the operator;
            # the operator learns the bureau's case number and the outcome, nothing about the complainant.
            _spec(
                "complaint_handling_ended",
                "operator",
                "enforcement",
                mutable=False,
                ttl_seconds=7 * _DAY,
                collapse_key="case:{case_no}",
                deep_link="gongping://inbox",
                fields=("case_no", "outcome", "bureau_name", "decided_on"),
                labels={"outcome": "mediation_end"},
            ),
            _spec(
                "supervisor_report_outcome",
                "supervisor",
                "supervision",
                mutable=True,
                ttl_seconds=7 * _DAY,
                collapse_key="report:{report_id}",
                deep_link="gongping://reports/{report_id}",
                fields=("report_id", "case_no", "outcome"),
                labels={"outcome": "report_outcome"},
            ),
            _spec(
                "case_assigned",
                "staff",
                "case_work",
                mutable=True,
                ttl_seconds=3 * _DAY,
                collapse_key="case:{case_id}",
                deep_link="gongping://cases/{case_id}",
                fields=("case_id", "case_no", "due_on"),
            ),
            _spec(
                "correction_requested",
                "staff",
                "case_work",
                mutable=True,
                ttl_seconds=3 * _DAY,
                collapse_key="correction:{correction_id}",
                deep_link="gongping://corrections/{correction_id}",
                fields=("correction_id", "operator_name", "due_on"),
            ),
            _spec(
                "case_overdue",
                "staff",
                "case_work",
                mutable=False,
                ttl_seconds=_DAY,
                collapse_key="case:{case_id}",
                deep_link="gongping://cases/{case_id}",
                fields=("case_id", "case_no", "due_on"),
            ),
            _spec(
                "correction_overdue",
                "staff",
                "case_work",
                mutable=False,
                ttl_seconds=_DAY,
                collapse_key="correction:{correction_id}",
                deep_link="gongping://corrections/{correction_id}",
                fields=("correction_id", "due_on"),
            ),
        )
    }
)


@dataclass(frozen=True, slots=True)
class _LocaleCatalog:
    messages: Mapping[str, tuple[str, str]]
    labels: Mapping[str, Mapping[str, str]]


def spec_for(kind: str) -> KindSpec:
    """The spec of ``kind``; unknown kinds raise :class:`TemplateError`."""
    try:
        return KINDS[kind]
    except KeyError:
        raise TemplateError(f"unknown message kind {kind!r}") from None


def resolve_locale(locale: str | None) -> str:
    """Map a BCP 47 / POSIX locale to a supported one: English when asked for, else zh-CN."""
    if locale and locale.replace("_", "-").split("-")[0].lower() == "en":
        return "en"
    # Traditional-Chinese and unknown locales get Simplified Chinese, the official working language.
    return DEFAULT_LOCALE


def is_identifying_key(key: str) -> bool:
    """Whether a context key names personal data of someone other than the operator."""
    lowered = key.lower()
    return (
        lowered in _IDENTITY_KEYS
        or "complainant" in lowered
        or any(part in _IDENTITY_TOKENS for part in lowered.split("_"))
    )


def _placeholders(template: str) -> set[str]:
    names: set[str] = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        # Attribute/index access, conversions and format specs could reach into objects; plain names only.
        if not _IDENTIFIER.match(name) or spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} in {template!r} must be a plain field name")
        names.add(name)
    return names


def _load_catalog(locale: str) -> _LocaleCatalog:
    raw: dict[str, Any] = json.loads(
        resources.files("notifications").joinpath("templates", f"{locale}.json").read_text(encoding="utf-8")
    )
    messages = {kind: (str(entry["title"]), str(entry["body"])) for kind, entry in raw["messages"].items()}
    labels = {
        group: MappingProxyType({str(code): str(text) for code, text in codes.items()})
        for group, codes in raw["labels"].items()
    }
    return _LocaleCatalog(MappingProxyType(messages), MappingProxyType(labels))


def _validate(catalogs: Mapping[str, _LocaleCatalog]) -> None:
    reference_labels = catalogs[DEFAULT_LOCALE].labels
    for locale, catalog in catalogs.items():
        if set(catalog.messages) != set(KINDS):
            raise TemplateError(f"{locale}: kinds {sorted(set(catalog.messages) ^ set(KINDS))} mismatch")
        for group, codes in reference_labels.items():
            if set(catalog.labels.get(group, {})) != set(codes):
                raise TemplateError(f"{locale}: label group {group!r} differs from {DEFAULT_LOCALE}")
        for kind, (title, body) in catalog.messages.items():
            spec = KINDS[kind]
            used = _placeholders(title) | _placeholders(body)
            if not used <= set(spec.fields):
                raise TemplateError(
                    f"{locale}/{kind}: undeclared placeholders {sorted(used - set(spec.fields))}"
                )
    for spec in KINDS.values():
        pattern_fields = _placeholders(spec.collapse_key) | _placeholders(spec.deep_link)
        if not pattern_fields <= set(spec.fields) or not spec.deep_link.startswith(DEEP_LINK_SCHEME):
            raise TemplateError(f"{spec.kind}: bad collapse-key or deep-link pattern")
        labelled = {**spec.labels, **spec.label_lists}
        if not set(labelled) <= set(spec.fields) or not set(labelled.values()) <= set(reference_labels):
            raise TemplateError(f"{spec.kind}: labels refer to unknown fields or groups")
        if spec.audience == "operator" and any(is_identifying_key(name) for name in spec.fields):
            raise TemplateError(f"{spec.kind}: operator-facing kind declares an identifying field")


_CATALOGS: Mapping[str, _LocaleCatalog] = MappingProxyType(
    {loc: _load_catalog(loc) for loc in SUPPORTED_LOCALES}
)
_validate(_CATALOGS)


def _plain_value(kind: str, key: str, value: object) -> str:
    if isinstance(value, bool | datetime):
        # A datetime needs the recipient's zone, which only the caller knows: format it there.
        raise TemplateError(f"{kind}: {key} must be str, int or date, got {type(value).__name__}")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise TemplateError(f"{kind}: {key} must be str, int or date, got {type(value).__name__}")
    if not value.strip() or len(value) > MAX_VALUE_LENGTH or _CONTROL_CHARS.search(value):
        raise TemplateError(f"{kind}: {key} must be 1..{MAX_VALUE_LENGTH} printable characters")
    return value


def _check_context(spec: KindSpec, context: Mapping[str, object]) -> None:
    if spec.audience == "operator":
        leaked = sorted(key for key in context if is_identifying_key(key))
        if leaked:
            raise ForbiddenContextError(f"{spec.kind} goes to the operator and must not carry {leaked}")
    missing = sorted(set(spec.fields) - set(context))
    unexpected = sorted(set(context) - set(spec.fields))
    if missing or unexpected:
        raise TemplateError(f"{spec.kind}: missing context {missing}, unexpected context {unexpected}")


def render(kind: str, locale: str | None, context: Mapping[str, object]) -> RenderedMessage:
    """Render ``kind`` for a recipient's locale (falling back to zh-CN) from exactly its declared context."""
    spec = spec_for(kind)
    _check_context(spec, context)
    resolved = resolve_locale(locale)
    catalog = _CATALOGS[resolved]
    raw = {key: _plain_value(kind, key, context[key]) for key in spec.fields}
    text = dict(raw)
    for key, group in spec.labels.items():
        try:
            text[key] = catalog.labels[group][raw[key]]
        except KeyError:
            raise TemplateError(f"{kind}: {raw[key]!r} is not a known {group} code") from None
    for key, group in spec.label_lists.items():
        try:
            words = [catalog.labels[group][code] for code in raw[key].split(",")]
        except KeyError:
            raise TemplateError(f"{kind}: {raw[key]!r} is not a list of {group} codes") from None
        text[key] = _LIST_SEPARATORS[resolved].join(words)
    # Identifiers inside links and keys are percent-encoded so a value cannot add path segments or queries.
    quoted = {key: quote(value, safe="") for key, value in raw.items()}
    collapse_key = spec.collapse_key.format_map(quoted)
    if len(collapse_key.encode()) > MAX_COLLAPSE_KEY_LENGTH:
        raise TemplateError(f"{kind}: collapse key longer than {MAX_COLLAPSE_KEY_LENGTH} bytes")
    title, body = catalog.messages[kind]
    return RenderedMessage(
        kind=kind,
        locale=resolved,
        title=title.format_map(text),
        body=body.format_map(text),
        deep_link=spec.deep_link.format_map(quoted),
        collapse_key=collapse_key,
        category=spec.category,
        ttl_seconds=spec.ttl_seconds,
        priority=spec.priority,
        urgent=spec.urgent,
        mutable=spec.mutable,
    )
