"""API shapes of the publication gate (staff) and of the published untrustworthy list (public)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

from backend.common.audience import Audience
from backend.operators.models import Sector
from backend.publication.models import PublicationStatus
from backend.records.rules import RecordKind, RecordState

Note = Annotated[str, Field(max_length=2000)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicationRequest(_Input):
    """Ask for a verified record to be published; a second staff member reviews it."""

    note: Note = ""


class PublicationApprove(_Input):
    """The reviewer's confidentiality review (Art. 18): each check must be confirmed explicitly."""

    no_state_or_trade_secret: bool = Field(
        default=False, description="不含国家秘密、商业秘密 / contains no state or trade secret"
    )
    no_personal_data: bool = Field(default=False, description="不含个人隐私 / contains no personal data")
    no_undisclosed_information_of_other_organs: bool = Field(
        default=False,
        description="不含其他机关尚未公开的信息 / contains nothing from another organ not yet disclosed",
    )
    note: Note = ""


class PublicationReason(_Input):
    """A refusal or an unpublication, with its reasons."""

    reason: str = Field(default="", max_length=2000)


class PublicationRead(BaseModel):
    """One publication request and its review, as staff in scope see it."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    id: int
    record_id: int
    operator_id: int
    record_version: int
    status: PublicationStatus
    requested_by_id: int | None
    requested_at: datetime
    request_note: str
    reviewed_by_id: int | None
    reviewed_at: datetime | None
    review_note: str
    no_state_or_trade_secret: bool
    no_personal_data: bool
    no_undisclosed_information_of_other_organs: bool
    published_at: datetime | None
    ended_by_id: int | None
    ended_at: datetime | None
    end_reason: str


class PublicationQueueItem(PublicationRead):
    """A request in the review queue with the record it is about, and whether the caller may review it."""

    operator_name: str
    kind: RecordKind
    kind_label_zh: str
    kind_label_en: str
    fact_date: date
    record_state: RecordState
    #: False when the caller entered, verified, corrected or asked to publish the record (four eyes).
    can_review: bool


class RecordPublicationState(BaseModel):
    """A record's publication: whether it is public now, the open request if any, and every request."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    record_id: int
    public_eligible: bool
    current: PublicationRead | None
    history: list[PublicationRead]


class PublishedRecordPublic(BaseModel):
    """A published bad record behind an operator's 失信 class: what, when, under which article."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    kind: RecordKind
    kind_name: str
    fact_date: date
    article: str
    article_name: str


class UntrustworthyEntryPublic(BaseModel):
    """One operator on the published untrustworthy list (Art. 19)."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    operator_id: int
    #: An individual business's holder name is masked (张**) wherever it appears in the name.
    name: str
    uscc: str
    sector: Sector
    sector_name: str
    jurisdiction_code: str
    jurisdiction_name: str
    #: The day the operator's current 失信 class began.
    untrustworthy_since: date
    records: list[PublishedRecordPublic]


class UntrustworthyPagePublic(BaseModel):
    """A page of the published untrustworthy list."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    items: list[UntrustworthyEntryPublic]
    total: int
    limit: int
    offset: int


class UntrustworthyListPublic(RootModel[list[UntrustworthyEntryPublic]]):
    """The whole published untrustworthy list as one JSON array (the download)."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
