"""API shapes for partner-department keys, the change feed and the read log.

The feed's shapes have every field optional: an event carries only the fields its key is scoped to, and a
field outside the scope is absent (not null). None of them has a place for a complainant's identity.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from backend.common.audience import Audience
from backend.exchange.models import FeedEventType, FeedField
from backend.records.models import RatingTrigger, RecordSource
from backend.records.rules import IntegrityClass, RecordKind

JurisdictionCode = Annotated[str, Field(pattern=r"^\d{6}$")]

#: Fields that only make sense with the event type they describe.
FIELD_NEEDS: dict[FeedField, FeedField] = {
    FeedField.class_reasons: FeedField.integrity_class,
    FeedField.record_dates: FeedField.record_kind,
    FeedField.record_findings: FeedField.record_kind,
    FeedField.record_summary: FeedField.record_kind,
    FeedField.evidence_refs: FeedField.record_kind,
}


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ApiKeyCreate(_Input):
    """A key for one partner department: which divisions (descendants included) and which fields it reads."""

    name: str = Field(min_length=1, max_length=100, description="密钥名称 / the key's name")
    department: str = Field(min_length=1, max_length=120, description="合作部门 / partner department")
    jurisdiction_codes: list[JurisdictionCode] = Field(
        min_length=1,
        max_length=50,
        description="共享范围（含下级区划）/ divisions shared, descendants included",
    )
    fields: list[FeedField] = Field(
        min_length=1, max_length=len(FeedField), description="可共享字段 / fields the key may read"
    )
    expires_at: AwareDatetime = Field(description="到期时间（最长两年）/ expiry, at most two years ahead")

    @field_validator("jurisdiction_codes")
    @classmethod
    def _distinct_codes(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @field_validator("fields")
    @classmethod
    def _coherent_fields(cls, value: list[FeedField]) -> list[FeedField]:
        chosen = set(value)
        for field, needs in FIELD_NEEDS.items():
            if field in chosen and needs not in chosen:
                raise ValueError(
                    f"字段 {field.value} 需要同时授权 {needs.value} / {field.value} needs {needs.value}"
                )
        return sorted(chosen)


class ApiKeyRevoke(_Input):
    """Why a key is revoked (kept with the key and in the audit log)."""

    reason: str = Field(min_length=1, max_length=2000)


class ApiKeyRotate(_Input):
    """A new secret for a key; the old one stops at once or after a grace period."""

    grace_hours: int = Field(
        default=0, ge=0, le=168, description="旧密钥继续有效的小时数 / hours the old key keeps working"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="新密钥到期时间，默认沿用 / the new key's expiry, by default the old one's"
    )


class ApiKeyRead(BaseModel):
    """A key as admins and staff see it: never its secret or hash."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    department: str
    key_prefix: str = Field(description="密钥前缀，用于辨认 / the key's visible prefix")
    jurisdiction_codes: list[str]
    fields: list[FeedField]
    status: Literal["active", "revoked", "expired"]
    expires_at: datetime
    created_at: datetime
    created_by_id: int | None
    revoked_at: datetime | None
    revoked_by_id: int | None
    revoke_reason: str | None
    rotated_from_id: int | None


class ApiKeyIssued(ApiKeyRead):
    """A new key with its secret, shown this once only."""

    api_key: str = Field(description="仅显示一次，请妥善保存 / shown once; store it safely")


class ReadLogRead(BaseModel):
    """One feed call by a key."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    id: int
    api_key_id: int
    department: str
    cursor_from: int = Field(description="本次读取起点（不含）/ position read from (exclusive)")
    cursor_to: int = Field(description="本次读取终点 / position read to")
    rows: int
    has_more: bool
    client_ip: str
    at: datetime


class FeedOperator(BaseModel):
    """The operator an event is about, as far as the key may see it."""

    uscc: str | None = None
    name: str | None = None
    sector: str | None = None
    address: str | None = None
    legal_representative: str | None = None


class FeedReason(BaseModel):
    """One reason of a class (Art. 13)."""

    rule: str
    article: str
    record_ids: list[int]
    explanation_zh: str
    explanation_en: str


class FeedClassChange(BaseModel):
    """A change of an operator's integrity class (Art. 10)."""

    from_class: IntegrityClass | None = None
    to_class: IntegrityClass | None = None
    as_of: date | None = None
    rules_version: str | None = None
    trigger: RatingTrigger | None = None
    reasons: list[FeedReason] | None = None


class FeedRecord(BaseModel):
    """A verified record as it stood at the event; on ``record_revoked`` the department withdraws it."""

    record_id: int
    version: int
    kind: RecordKind | None = None
    kind_label_zh: str | None = None
    kind_label_en: str | None = None
    bad: bool | None = None
    source: RecordSource | None = None
    fact_date: date | None = None
    instrument_still_in_use: bool | None = None
    social_impact: bool | None = None
    summary: str | None = None
    evidence_refs: list[str] | None = None
    document_ref: str | None = Field(
        default=None, description="文书编号（仅执法、检定、协会来源）/ document number of official sources"
    )


class FeedEvent(BaseModel):
    """One change in the feed."""

    cursor: str = Field(description="从此事件之后继续读取的游标 / resume after this event with this cursor")
    type: FeedEventType
    occurred_at: datetime
    operator_id: int
    jurisdiction_code: str
    operator: FeedOperator | None = None
    class_change: FeedClassChange | None = None
    record: FeedRecord | None = None


class FeedPage(BaseModel):
    """A page of the feed, oldest first; pass ``next_cursor`` back to continue."""

    events: list[FeedEvent]
    next_cursor: str
    has_more: bool
