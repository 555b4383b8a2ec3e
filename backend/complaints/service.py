"""Complaint intake: resolve the subject, convert the geotag, check the weighing, store everything in one
transaction with its photos' originals and the outbox event; idempotent per account and key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.complaints.models import (
    Complaint,
    ComplaintEvent,
    ComplaintPhoto,
    ComplaintSource,
    ComplaintStatus,
    IdempotencyKey,
    PhotoKind,
    PhotoStatus,
)
from backend.complaints.schemas import (
    ComplaintCreated,
    ComplaintOperatorView,
    ComplaintRead,
    ComplaintStaffRead,
    ComplaintSubmission,
    ComplaintSummary,
    ContactRead,
    FilerRead,
    LocationRead,
    PhotoRead,
    PhotoStaffRead,
    PhotoStatusRead,
    RoutingCandidate,
    RoutingRead,
    RoutingStaffRead,
    SimilarCounts,
    SubjectRead,
    TimelineEntry,
    WeighingIn,
    WeighingRead,
)
from backend.complaints.weighing import WeightOutsideTable, check_weighing
from backend.config import get_settings
from backend.dates import bureau_date
from backend.db import utcnow
from backend.errors import AppError, conflict, not_found
from backend.i18n import Locale
from backend.instruments.models import Instrument
from backend.jurisdictions.models import Jurisdiction
from backend.media.processing import ImageFormat
from backend.media.storage import MediaStorage, put_content_addressed, storage_unavailable
from backend.operators.models import Operator, Stall
from backend.outbox import service as outbox_service
from backend.qr import service as qr_service
from backend.uploads.models import PhotoUpload
from geo import geodesic_m, to_wgs84
from geo.geodesy import search_box

#: Storage namespaces: originals are evidence (staff only); renditions are what anyone else may see.
ORIGINALS = "complaint-originals"
DISPLAY = "complaint-display"
THUMBNAILS = "complaint-thumbnails"

SIMILAR_DAYS = 7
SIMILAR_RADIUS_M = 250

#: Roles that may file; a supervisor's filing is a patrol report.
FILER_ROLES = frozenset({Role.consumer_device, Role.consumer, Role.supervisor})


@dataclass(frozen=True)
class IncomingPhoto:
    """A photo part that passed sniffing and validation at the API."""

    data: bytes
    sha256: str
    format: ImageFormat
    width: int
    height: int
    kind: PhotoKind


@dataclass(frozen=True)
class UploadedPhoto:
    """A photo uploaded ahead (``POST /api/v1/uploads``) that a submission names: already stored and checked."""

    upload_id: str
    original_key: str
    sha256: str
    original_bytes: int
    format: str
    width: int
    height: int
    kind: PhotoKind
    #: The complaint it is already attached to, if any (a replay's own, or a conflict).
    complaint_id: int | None


@dataclass(frozen=True)
class Submission:
    """A parsed, validated submission and the hash that identifies its body.

    A JSON submission names uploads (``upload_ids``) that are resolved with the database: until then
    ``uploaded`` is empty and ``request_hash`` is blank; ``raw`` is the JSON the hash is made from.
    """

    data: ComplaintSubmission
    photos: tuple[IncomingPhoto, ...]
    request_hash: str
    upload_ids: tuple[str, ...] = ()
    uploaded: tuple[UploadedPhoto, ...] = ()
    raw: dict[str, Any] | None = None


def request_hash(raw: dict[str, Any], photo_sha256s: Sequence[str]) -> str:
    """SHA-256 of the canonical JSON part and the photos' SHA-256s: the body a retry must repeat."""
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{canonical}\n{','.join(photo_sha256s)}".encode()).hexdigest()


# ---- subject, location, weighing --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedSubject:
    """The operator, stall and instrument a complaint is about (each None when unknown)."""

    operator: Operator | None
    stall: Stall | None
    instrument: Instrument | None
    via_qr: bool


def _unknown_subject(field: str) -> AppError:
    return AppError(
        422,
        "unknown_subject",
        "投诉对象不存在",
        "the operator, stall or instrument does not exist",
        {"field": field},
    )


def _inconsistent_subject() -> AppError:
    return AppError(
        422,
        "inconsistent_subject",
        "二维码、经营者、摊位与计量器具不一致",
        "the QR code, operator, stall and instrument do not belong together",
    )


def _same(current: int | None, new: int | None) -> int | None:
    if current is not None and new is not None and current != new:
        raise _inconsistent_subject()
    return current if current is not None else new


def resolve_subject(session: Session, data: ComplaintSubmission) -> ResolvedSubject:
    """Resolve the QR token and ids to one consistent operator/stall/instrument; 422 otherwise."""
    operator_id: int | None = None
    stall_id: int | None = None
    instrument_id: int | None = None
    via_qr = False
    if data.qr_token is not None:
        target = qr_service.resolve(session, data.qr_token, forged_status=422, revoked_status=422)
        operator_id = target.operator.id
        stall_id = target.stall.id if target.stall is not None else None
        instrument_id = target.instrument.id if target.instrument is not None else None
        via_qr = True
    instrument_id = _same(instrument_id, data.instrument_id)
    stall_id = _same(stall_id, data.stall_id)
    operator_id = _same(operator_id, data.operator_id)
    instrument = session.get(Instrument, instrument_id) if instrument_id is not None else None
    if instrument_id is not None and instrument is None:
        raise _unknown_subject("instrument_id")
    if instrument is not None:
        operator_id = _same(operator_id, instrument.operator_id)
        # A scale registered at a stall places the complaint at that stall too.
        stall_id = _same(stall_id, instrument.stall_id)
    stall = session.get(Stall, stall_id) if stall_id is not None else None
    if stall_id is not None and stall is None:
        raise _unknown_subject("stall_id")
    if stall is not None:
        operator_id = _same(operator_id, stall.market_id)
    operator = session.get(Operator, operator_id) if operator_id is not None else None
    if operator_id is not None and operator is None:
        raise _unknown_subject("operator_id")
    return ResolvedSubject(operator=operator, stall=stall, instrument=instrument, via_qr=via_qr)


def weighing_result(weighing: WeighingIn) -> tuple[dict[str, Any], bool | None]:
    """The Order No. 66 check as stored with the complaint, and whether it found a short weight."""
    try:
        result = check_weighing(weighing.declared_g, weighing.measured_g, weighing.goods_class)
    except WeightOutsideTable:
        # The complaint stands; only the check cannot be made, because the Order sets no limit there.
        return {
            "checked": False,
            "explanation_zh": "结算重量超出《零售商品称重计量监督管理办法》附表的称重范围，该办法未规定允许负偏差，"
            "由执法人员核查。",
            "explanation_en": "The settled weight lies outside the tables of the Retail Goods Weighing Order"
            " (No. 66), which sets no permitted deviation there; staff will assess it.",
        }, None
    except ValueError as exc:
        raise AppError(
            422,
            "invalid_weighing",
            "称重数据不合理：结算重量与核称重量相差过大，请检查单位（克）",
            "implausible weighing figures: check the units (grams)",
            {"reason": str(exc)},
        ) from None
    return {
        "checked": True,
        "shortfall_g": str(result.shortfall_g),
        "shortfall_pct": str(result.shortfall_pct),
        "permitted_g": str(result.permitted_g),
        "within_tolerance": result.within_tolerance,
        "table_ref": result.table_ref,
        "explanation_zh": result.explanation_zh,
        "explanation_en": result.explanation_en,
    }, not result.within_tolerance


def _check_filer(account: Account, data: ComplaintSubmission, subject: ResolvedSubject) -> ComplaintSource:
    if account.role == Role.supervisor:
        if data.finding is None:
            raise AppError(
                422, "finding_required", "巡查报告须注明发现的问题类型", "a patrol report needs a finding"
            )
        if subject.operator is None:
            raise AppError(
                422, "subject_required", "巡查报告须指明经营者", "a patrol report must name the operator"
            )
        return ComplaintSource.supervisor
    if data.finding is not None:
        raise AppError(
            422,
            "finding_not_allowed",
            "仅计量诚信监督员可提交巡查发现",
            "only supervisors file patrol findings",
        )
    if subject.operator is None and data.location is None and data.address is None:
        raise AppError(
            422,
            "location_or_subject_required",
            "请提供位置、地址或扫描经营者二维码，以便转交属地市场监管部门",
            "give a location, an address or the operator's QR code so the complaint can reach the local bureau",
        )
    return ComplaintSource.consumer


# ---- creating -------------------------------------------------------------------------------------------


def _received_note(source: ComplaintSource) -> tuple[str, str]:
    if source == ComplaintSource.supervisor:
        return (
            "巡查报告已收到，正在转交属地市场监管部门",
            "Patrol report received; being routed to the local bureau",
        )
    return "投诉已收到，正在转交属地市场监管部门", "Complaint received; being routed to the local bureau"


def add_event(
    session: Session,
    complaint: Complaint,
    status: ComplaintStatus,
    note_zh: str,
    note_en: str,
    actor_id: int | None = None,
) -> ComplaintEvent:
    """Append a step to the complaint's timeline."""
    event = ComplaintEvent(
        complaint_id=complaint.id or 0, status=status, note_zh=note_zh, note_en=note_en, actor_id=actor_id
    )
    session.add(event)
    session.flush()
    return event


def store_original(storage: MediaStorage, photo: IncomingPhoto) -> str:
    """Write a photo's original under its content key (503 while storage is unavailable); returns the key.

    Returns only once the store holds the bytes durably (a local file synced, or an object store's PUT
    answered), so the complaint row that names the key is committed after, never before.
    """
    try:
        return put_content_addressed(storage, photo.data, namespace=ORIGINALS, extension=photo.format.value)
    except OSError as exc:  # MediaUnavailable, or any I/O error of a store
        raise storage_unavailable() from exc


def create(session: Session, *, account: Account, submission: Submission, storage: MediaStorage) -> Complaint:
    """Store a complaint, its photos (originals written to storage first), its first event and its outbox row.

    Originals are written before the commit under content-addressed keys: a rollback leaves an orphaned file
    (harmless, and reused if the same photo comes again), never a row pointing at a missing file.
    """
    data = submission.data
    subject = resolve_subject(session, data)
    source = _check_filer(account, data, subject)
    complaint = Complaint(
        account_id=account.id or 0,
        filer_role=account.role,
        source=source,
        category=data.category,
        finding=data.finding,
        description=data.description,
        operator_id=subject.operator.id if subject.operator else None,
        stall_id=subject.stall.id if subject.stall else None,
        instrument_id=subject.instrument.id if subject.instrument else None,
        via_qr=subject.via_qr,
        address=data.address,
    )
    if data.location is not None:
        loc = data.location
        complaint.lon, complaint.lat = to_wgs84(loc.lon, loc.lat, loc.coord_system)
        complaint.original_lon, complaint.original_lat = loc.lon, loc.lat
        complaint.coord_system = loc.coord_system
        complaint.accuracy_m = loc.accuracy_m
        # Stored in UTC: SQLite would otherwise drop the phone's offset and shift the time.
        complaint.captured_at = loc.captured_at.astimezone(UTC) if loc.captured_at is not None else None
    if data.weighing is not None:
        complaint.weighing_result, complaint.short_weight = weighing_result(data.weighing)
        complaint.declared_g = data.weighing.declared_g
        complaint.measured_g = data.weighing.measured_g
        complaint.goods_class = data.weighing.goods_class
    if data.contact is not None:
        complaint.contact_name = data.contact.name
        complaint.contact_phone = data.contact.phone
    session.add(complaint)
    session.flush()
    photos = []
    for position, incoming in enumerate(submission.photos):
        photo = ComplaintPhoto(
            complaint_id=complaint.id or 0,
            position=position,
            kind=incoming.kind,
            original_key=store_original(storage, incoming),
            original_sha256=incoming.sha256,
            original_bytes=len(incoming.data),
            original_format=incoming.format.value,
            width=incoming.width,
            height=incoming.height,
        )
        session.add(photo)
        photos.append(photo)
    offset = len(photos)
    for position, uploaded in enumerate(submission.uploaded, start=offset):
        photo = ComplaintPhoto(
            complaint_id=complaint.id or 0,
            position=position,
            kind=uploaded.kind,
            original_key=uploaded.original_key,
            original_sha256=uploaded.sha256,
            original_bytes=uploaded.original_bytes,
            original_format=uploaded.format,
            width=uploaded.width,
            height=uploaded.height,
        )
        session.add(photo)
        photos.append(photo)
    if submission.uploaded:
        session.execute(
            update(PhotoUpload)
            .where(col(PhotoUpload.id).in_([u.upload_id for u in submission.uploaded]))
            .values(complaint_id=complaint.id, attached_at=utcnow())
        )
    session.flush()
    add_event(session, complaint, ComplaintStatus.received, *_received_note(source))
    outbox_service.emit(
        session,
        "complaint.created",
        {"complaint_id": complaint.id, "photo_ids": [p.id for p in photos]},
        dedupe_key=f"complaint.created:{complaint.id}",
    )
    return complaint


def find_replay(session: Session, *, account_id: int, key: str, body_hash: str) -> Complaint | None:
    """The complaint an earlier submission with this key made, or None; 409 if that body was different."""
    row = session.execute(
        select(IdempotencyKey).where(
            col(IdempotencyKey.account_id) == account_id, col(IdempotencyKey.key) == key
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise conflict(
            "idempotency_conflict",
            "该 Idempotency-Key 已用于另一份不同的投诉，请为新投诉生成新的键",
            "this Idempotency-Key was used for a different submission; use a new key for a new complaint",
        )
    complaint = session.get(Complaint, row.complaint_id) if row.complaint_id is not None else None
    if complaint is None:
        raise not_found("投诉", "complaint")
    return complaint


def submit(
    session: Session, *, account: Account, key: str, submission: Submission, storage: MediaStorage
) -> tuple[Complaint, bool]:
    """Create the complaint once per (account, key): returns it and whether this call created it.

    The key is claimed first, in a savepoint: on PostgreSQL a concurrent retry's insert waits on the unique
    index until the first transaction ends, then fails and re-reads the committed claim; on SQLite writers are
    already serialised by ``BEGIN IMMEDIATE``. Either way exactly one complaint is made.
    """
    claim = IdempotencyKey(account_id=account.id or 0, key=key, request_hash=submission.request_hash)
    try:
        with session.begin_nested():
            session.add(claim)
    except IntegrityError:
        replay = find_replay(session, account_id=account.id or 0, key=key, body_hash=submission.request_hash)
        if replay is None:
            raise
        return replay, False
    complaint = create(session, account=account, submission=submission, storage=storage)
    claim.complaint_id = complaint.id
    session.add(claim)
    session.flush()
    return complaint, True


def purge_idempotency_keys(session: Session, *, now: datetime | None = None, days: int | None = None) -> int:
    """Delete idempotency keys older than the retention period; returns how many."""
    cutoff = (now or utcnow()) - timedelta(days=days or get_settings().idempotency_key_days)
    result = session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# ---- reading --------------------------------------------------------------------------------------------


def photos_of(session: Session, complaint_id: int) -> list[ComplaintPhoto]:
    """A complaint's photos in upload order."""
    return list(
        session.execute(
            select(ComplaintPhoto)
            .where(col(ComplaintPhoto.complaint_id) == complaint_id)
            .order_by(col(ComplaintPhoto.position))
        ).scalars()
    )


def timeline_of(session: Session, complaint_id: int) -> list[ComplaintEvent]:
    """A complaint's events, oldest first."""
    return list(
        session.execute(
            select(ComplaintEvent)
            .where(col(ComplaintEvent.complaint_id) == complaint_id)
            .order_by(col(ComplaintEvent.at), col(ComplaintEvent.id))
        ).scalars()
    )


def _routing(complaint: Complaint) -> RoutingRead:
    return RoutingRead(status=complaint.routing_status, jurisdiction_code=complaint.jurisdiction_code)


def routing_staff(complaint: Complaint, locale: Locale) -> RoutingStaffRead:
    """How routing decided, with its reason in the reader's language (staff only)."""
    return RoutingStaffRead(
        status=complaint.routing_status,
        jurisdiction_code=complaint.jurisdiction_code,
        rule=complaint.routing_rule,
        reason_code=complaint.routing_reason_code,
        reason=complaint.routing_reason_zh if locale == "zh-CN" else complaint.routing_reason_en,
        candidates=[RoutingCandidate.model_validate(c) for c in complaint.routing_candidates or []],
        low_confidence=complaint.routing_low_confidence,
        location_mismatch=complaint.location_mismatch,
        operator_distance_m=complaint.operator_distance_m,
        routed_at=complaint.routed_at,
    )


def case_number(*, tip_off: bool, received_at: datetime, complaint_id: int) -> str:
    """The case number: 投诉 TS / 举报 JB, the year of receipt, the complaint's number (unique, 1:1)."""
    prefix = "JB" if tip_off else "TS"
    return f"{prefix}{bureau_date(received_at).year}{complaint_id:08d}"


def case_number_of(complaint: Complaint) -> str:
    """The number a complaint's case carries (known at receipt): what the filer quotes, never the row id."""
    return case_number(
        # A supervisor's patrol report becomes a 举报 (tip-off) case, a consumer's complaint a 投诉.
        tip_off=complaint.source == ComplaintSource.supervisor,
        received_at=complaint.created_at,
        complaint_id=complaint.id or 0,
    )


def to_created(session: Session, complaint: Complaint) -> ComplaintCreated:
    """The answer to a submission."""
    return ComplaintCreated(
        id=complaint.id or 0,
        case_no=case_number_of(complaint),
        status=complaint.status,
        created_at=complaint.created_at,
        photos=[
            PhotoStatusRead(id=p.id or 0, kind=p.kind, status=p.status)
            for p in photos_of(session, complaint.id or 0)
        ],
        routing=_routing(complaint),
    )


def _subject(session: Session, complaint: Complaint) -> SubjectRead:
    operator = session.get(Operator, complaint.operator_id) if complaint.operator_id else None
    stall = session.get(Stall, complaint.stall_id) if complaint.stall_id else None
    instrument = session.get(Instrument, complaint.instrument_id) if complaint.instrument_id else None
    return SubjectRead(
        operator_id=complaint.operator_id,
        operator_name=operator.name if operator else None,
        stall_id=complaint.stall_id,
        stall_number=stall.number if stall else None,
        instrument_id=complaint.instrument_id,
        instrument_serial=instrument.serial if instrument else None,
        via_qr=complaint.via_qr,
    )


def _location(complaint: Complaint) -> LocationRead | None:
    if complaint.lon is None or complaint.lat is None or complaint.coord_system is None:
        return None
    return LocationRead(
        lon=complaint.lon,
        lat=complaint.lat,
        original_lon=complaint.original_lon if complaint.original_lon is not None else complaint.lon,
        original_lat=complaint.original_lat if complaint.original_lat is not None else complaint.lat,
        coord_system=complaint.coord_system,
        accuracy_m=complaint.accuracy_m,
        captured_at=complaint.captured_at,
    )


def _decimal(value: Any) -> Decimal | None:
    """A mass or percentage without trailing zeros or exponent (1000.000 → 1000)."""
    if value is None:
        return None
    return Decimal(format(Decimal(str(value)).normalize(), "f"))


def _weighing(complaint: Complaint, locale: Locale) -> WeighingRead | None:
    result = complaint.weighing_result
    if (
        result is None
        or complaint.declared_g is None
        or complaint.measured_g is None
        or complaint.goods_class is None
    ):
        return None
    return WeighingRead(
        declared_g=_decimal(complaint.declared_g) or complaint.declared_g,
        measured_g=_decimal(complaint.measured_g) or complaint.measured_g,
        goods_class=complaint.goods_class,
        checked=bool(result.get("checked")),
        shortfall_g=_decimal(result.get("shortfall_g")),
        shortfall_pct=_decimal(result.get("shortfall_pct")),
        permitted_g=_decimal(result.get("permitted_g")),
        within_tolerance=result.get("within_tolerance"),
        table_ref=result.get("table_ref"),
        explanation=str(result.get("explanation_zh" if locale == "zh-CN" else "explanation_en", "")),
    )


def _contact(complaint: Complaint) -> ContactRead | None:
    if complaint.contact_phone is None:
        return None
    return ContactRead(name=complaint.contact_name or "", phone=complaint.contact_phone)


def _timeline(session: Session, complaint: Complaint, locale: Locale) -> list[TimelineEntry]:
    return [
        TimelineEntry(at=e.at, status=e.status, note=e.note_zh if locale == "zh-CN" else e.note_en)
        for e in timeline_of(session, complaint.id or 0)
    ]


def photo_url(photo: ComplaintPhoto, rendition: str) -> str | None:
    """Where a rendition can be fetched once processed (originals: staff only)."""
    if rendition == "original":
        return f"/api/v1/staff/complaints/{photo.complaint_id}/photos/{photo.id}/original"
    if photo.status != PhotoStatus.processed:
        return None
    return f"/api/v1/complaints/{photo.complaint_id}/photos/{photo.id}/{rendition}"


def _reject_message(photo: ComplaintPhoto, locale: Locale) -> str | None:
    return photo.reject_message_zh if locale == "zh-CN" else photo.reject_message_en


def to_read(session: Session, complaint: Complaint, locale: Locale) -> ComplaintRead:
    """The filer's view, with the timeline."""
    return ComplaintRead(
        id=complaint.id or 0,
        source=complaint.source,
        category=complaint.category,
        finding=complaint.finding,
        description=complaint.description,
        status=complaint.status,
        created_at=complaint.created_at,
        updated_at=complaint.updated_at,
        subject=_subject(session, complaint),
        location=_location(complaint),
        address=complaint.address,
        weighing=_weighing(complaint, locale),
        contact=_contact(complaint),
        photos=[
            PhotoRead(
                id=p.id or 0,
                kind=p.kind,
                status=p.status,
                reject_reason=p.reject_reason,
                reject_message=_reject_message(p, locale),
                display_url=photo_url(p, "display"),
                thumbnail_url=photo_url(p, "thumbnail"),
            )
            for p in photos_of(session, complaint.id or 0)
        ],
        routing=_routing(complaint),
        timeline=_timeline(session, complaint, locale),
    )


def to_staff_read(session: Session, complaint: Complaint, locale: Locale) -> ComplaintStaffRead:
    """Everything handling staff see, evidence included."""
    filer = session.get(Account, complaint.account_id)
    return ComplaintStaffRead(
        id=complaint.id or 0,
        source=complaint.source,
        category=complaint.category,
        finding=complaint.finding,
        description=complaint.description,
        status=complaint.status,
        created_at=complaint.created_at,
        updated_at=complaint.updated_at,
        filer=FilerRead(
            account_id=complaint.account_id,
            role=complaint.filer_role,
            display_name=filer.display_name if filer else "",
        ),
        contact=_contact(complaint),
        subject=_subject(session, complaint),
        location=_location(complaint),
        address=complaint.address,
        weighing=_weighing(complaint, locale),
        short_weight=complaint.short_weight,
        photos=[
            PhotoStaffRead(
                id=p.id or 0,
                kind=p.kind,
                status=p.status,
                reject_reason=p.reject_reason,
                reject_message=_reject_message(p, locale),
                original_sha256=p.original_sha256,
                original_bytes=p.original_bytes,
                original_format=p.original_format,
                width=p.width,
                height=p.height,
                phash=p.phash,
                duplicate_of_photo_ids=list(p.duplicate_of_photo_ids or []),
                evidence=p.evidence,
                created_at=p.created_at,
                processed_at=p.processed_at,
                display_url=photo_url(p, "display"),
                thumbnail_url=photo_url(p, "thumbnail"),
                original_url=photo_url(p, "original") or "",
            )
            for p in photos_of(session, complaint.id or 0)
        ],
        routing=routing_staff(complaint, locale),
        timeline=_timeline(session, complaint, locale),
    )


def to_operator_view(session: Session, complaint: Complaint, locale: Locale) -> ComplaintOperatorView:
    """What the operator concerned may be told: the allegation, never the filer, location or photos."""
    stall = session.get(Stall, complaint.stall_id) if complaint.stall_id else None
    instrument = session.get(Instrument, complaint.instrument_id) if complaint.instrument_id else None
    count = session.execute(
        select(func.count())
        .select_from(ComplaintPhoto)
        .where(col(ComplaintPhoto.complaint_id) == complaint.id)
    ).scalar_one()
    return ComplaintOperatorView(
        id=complaint.id or 0,
        category=complaint.category,
        finding=complaint.finding,
        status=complaint.status,
        received_on=bureau_date(complaint.created_at),
        stall_number=stall.number if stall else None,
        instrument_serial=instrument.serial if instrument else None,
        weighing=_weighing(complaint, locale),
        photo_count=int(count),
    )


def get_own(session: Session, account: Account, complaint_id: int) -> Complaint:
    """The caller's own complaint; 404 for anyone else's, so ids reveal nothing."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or complaint.account_id != account.id:
        raise not_found("投诉", "complaint")
    return complaint


def list_own(session: Session, account: Account, *, limit: int, offset: int) -> list[ComplaintSummary]:
    """A page of the caller's complaints, newest first (the total comes with the list's validator)."""
    # One round trip: the photo counts as a correlated count and the operator's name by a join, on the
    # (account_id, id) index; the columns the line shows, not whole rows.
    photo_count = (
        select(func.count())
        .where(col(ComplaintPhoto.complaint_id) == col(Complaint.id))
        .correlate(Complaint)
        .scalar_subquery()
    )
    rows = session.execute(
        sa_select(
            col(Complaint.id),
            col(Complaint.source),
            col(Complaint.category),
            col(Complaint.status),
            col(Complaint.created_at),
            col(Operator.name),
            photo_count,
            col(Complaint.routing_status),
            col(Complaint.jurisdiction_code),
        )
        .outerjoin(Operator, col(Operator.id) == col(Complaint.operator_id))
        .where(col(Complaint.account_id) == account.id)
        .order_by(col(Complaint.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        ComplaintSummary(
            id=cid,
            source=source,
            category=category,
            status=status,
            created_at=created_at,
            operator_name=operator_name,
            photo_count=int(photos),
            routing=RoutingRead(status=routing_status, jurisdiction_code=jurisdiction_code),
        )
        for cid, source, category, status, created_at, operator_name, photos, routing_status, jurisdiction_code in rows
    ]


def get_for_staff(session: Session, scope: Scope, complaint_id: int) -> Complaint:
    """A complaint routed into the scope (before routing: admins only); 404 otherwise."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None:
        raise not_found("投诉", "complaint")
    if scope.path == "/":
        return complaint
    jurisdiction = (
        session.get(Jurisdiction, complaint.jurisdiction_code) if complaint.jurisdiction_code else None
    )
    if jurisdiction is None or not scope.covers(jurisdiction.path):
        raise not_found("投诉", "complaint")
    return complaint


def similar_counts(
    session: Session,
    *,
    account_id: int,
    operator_id: int | None,
    point: tuple[float, float] | None,
    category: Any,
    now: datetime | None = None,
) -> SimilarCounts:
    """How many complaints others filed in the last 7 days on the same operator, or within 250 m (WGS-84)."""
    since = (now or utcnow()) - timedelta(days=SIMILAR_DAYS)
    filters = [col(Complaint.created_at) >= since, col(Complaint.account_id) != account_id]
    if category is not None:
        filters.append(col(Complaint.category) == category)
    if operator_id is not None:
        count = session.execute(
            select(func.count())
            .select_from(Complaint)
            .where(col(Complaint.operator_id) == operator_id, *filters)
        ).scalar_one()
        return SimilarCounts(
            basis="operator", category=category, days=SIMILAR_DAYS, radius_m=None, count=int(count)
        )
    assert point is not None
    lon, lat = point
    # The box narrows the scan in SQL (an index on lat, lon); the geodesic then decides the circle exactly.
    min_lon, min_lat, max_lon, max_lat = search_box(lon, lat, SIMILAR_RADIUS_M)
    rows = session.execute(
        select(col(Complaint.lon), col(Complaint.lat)).where(
            col(Complaint.lat).between(min_lat, max_lat),
            col(Complaint.lon).between(min_lon, max_lon),
            *filters,
        )
    ).all()
    count = sum(
        1
        for r_lon, r_lat in rows
        if r_lon is not None and geodesic_m(lon, lat, r_lon, r_lat) <= SIMILAR_RADIUS_M
    )
    return SimilarCounts(
        basis="area", category=category, days=SIMILAR_DAYS, radius_m=SIMILAR_RADIUS_M, count=count
    )
