"""Partner-department keys, the change feed and its read log (Art. 20, 21).

**Keys** are ``gpx_<lookup id>_<secret>``: the 12-character lookup id is stored in clear and indexed, the
256-bit secret only as HMAC-SHA256 under a key derived from the server secret, compared in constant time.
A fast keyed hash is enough because the secret is random, not chosen by a person: there is nothing to
brute-force, and argon2's deliberate slowness (tens of milliseconds of CPU and megabytes of memory) would be
paid on every feed call for no gain. The pepper means a copy of the database alone cannot check a guessed key;
in exchange, changing ``GONGPING_SECRET_KEY`` stops every key (they are then rotated).

**The feed's order.** Class changes (``rating_change``) and record versions (``integrity_record_version``)
get their ids when they are inserted, not when they commit, so paging by those ids would lose a row whose
transaction commits after a later id was already read. The feed therefore numbers entries itself:
``capture`` copies the shareable rows that have become visible into ``exchange_feed_entry`` and numbers them
there, one capture at a time (a transaction advisory lock on PostgreSQL; SQLite runs one writer at a time),
so entries become visible in the order of their numbers and a page bounded by the highest visible number
never skips one. A capture finds rows still to copy by an anti-join on ids above a per-table mark; the mark
only moves past rows older than ``SETTLE_AFTER``, so a row committed late (its id below rows already copied)
is found by the next capture, and the anti-join stays small. This assumes a writing transaction commits
within half of ``SETTLE_AFTER`` of creating its rows (workers have 300 s time limits, requests far less).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import record_read, snapshot
from backend.auth.scope import Scope
from backend.config import get_settings
from backend.db import aware, is_postgres, utcnow
from backend.errors import AppError, not_found
from backend.exchange.models import (
    ExchangeApiKey,
    FeedCaptureMark,
    FeedEntry,
    FeedEventType,
    FeedField,
    FeedReadLog,
    FeedSource,
)
from backend.exchange.schemas import (
    ApiKeyCreate,
    ApiKeyRead,
    ApiKeyRotate,
    FeedClassChange,
    FeedEvent,
    FeedOperator,
    FeedReason,
    FeedRecord,
)
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.records.models import (
    IntegrityRecord,
    IntegrityRecordVersion,
    RatingChange,
    RecordChange,
    RecordSource,
)
from backend.records.rules import KIND_INFO, RecordKind, RecordState

KEY_PREFIX = "gpx_"
_LOOKUP_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_LOOKUP_LEN = 12
_KEY_RE = re.compile(rf"^{KEY_PREFIX}([a-z2-7]{{{_LOOKUP_LEN}}})_([A-Za-z0-9_-]{{43}})$")
#: Longest a key may live; rotation gives a new one.
MAX_KEY_DAYS = 730

#: Rows of the history tables older than this are final (their transactions have ended) once captured.
SETTLE_AFTER = timedelta(hours=1)
#: At most this many rows per history table per capture; the rest come with the next call (``has_more``).
CAPTURE_BATCH = 5000
#: Any 64-bit number unique to this lock among the app's advisory locks.
_CAPTURE_LOCK = 0x67707866656564  # "gpxfeed"

#: Sources whose reference is an official document number; a complaint's or a supervisor's reference points
#: at a person's report and is never shared.
DOCUMENT_REF_SOURCES = frozenset(
    {RecordSource.staff, RecordSource.inspection, RecordSource.institution, RecordSource.association}
)
_VERSION_EVENTS: dict[RecordChange, FeedEventType] = {
    RecordChange.create: FeedEventType.record_verified,
    RecordChange.verify: FeedEventType.record_verified,
    RecordChange.correct: FeedEventType.record_corrected,
    RecordChange.revoke: FeedEventType.record_revoked,
}
_CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_CURSOR_BODY = re.compile(r"^gpc1:(0|[1-9]\d{0,17})$")


# ---- keys -------------------------------------------------------------------------------------------------


def _pepper() -> bytes:
    return hashlib.sha256(b"gongping/exchange-api-key\x00" + get_settings().secret_key.encode()).digest()


def secret_hash(lookup_id: str, secret: str) -> str:
    """How a key's secret is stored: HMAC-SHA256 bound to its lookup id."""
    return hmac.new(_pepper(), f"{lookup_id}.{secret}".encode(), hashlib.sha256).hexdigest()


def _new_secret() -> tuple[str, str, str]:
    lookup_id = "".join(secrets.choice(_LOOKUP_ALPHABET) for _ in range(_LOOKUP_LEN))
    secret = secrets.token_urlsafe(32)
    return lookup_id, secret, f"{KEY_PREFIX}{lookup_id}_{secret}"


def key_prefix(key: ExchangeApiKey) -> str:
    """The visible part of a key, to tell keys apart in lists and logs."""
    return f"{KEY_PREFIX}{key.lookup_id}"


def key_status(key: ExchangeApiKey, now: datetime | None = None) -> str:
    """active, revoked or expired."""
    now = now or utcnow()
    if key.revoked_at is not None and aware(key.revoked_at) <= now:
        return "revoked"
    if aware(key.expires_at) <= now:
        return "expired"
    return "active"


def to_read(key: ExchangeApiKey) -> ApiKeyRead:
    """A key as staff see it."""
    data = key.model_dump(exclude={"secret_hash", "lookup_id", "scope_path"})
    for name in ("expires_at", "created_at", "revoked_at"):
        if data[name] is not None:
            data[name] = aware(data[name])
    return ApiKeyRead.model_validate({**data, "key_prefix": key_prefix(key), "status": key_status(key)})


def _check_expiry(expires_at: datetime) -> datetime:
    now = utcnow()
    if expires_at <= now or expires_at > now + timedelta(days=MAX_KEY_DAYS):
        raise AppError(
            422,
            "invalid_expiry",
            f"到期时间须在将来且不超过 {MAX_KEY_DAYS} 天",
            f"expiry must be in the future and within {MAX_KEY_DAYS} days",
            {"expires_at": expires_at.isoformat()},
        )
    return expires_at.astimezone(UTC)


def _common_path(paths: Iterable[str]) -> str:
    """The path of the lowest division above (or equal to) all these divisions; "/" when there is none."""
    split = [[part for part in path.split("/") if part] for path in paths]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/" + "".join(f"{part}/" for part in common)


def _scope_paths(session: Session, scope: Scope, codes: Sequence[str]) -> dict[str, str]:
    """The paths of the given divisions, each of which must exist and lie inside the caller's scope."""
    rows = session.exec(select(Jurisdiction).where(col(Jurisdiction.code).in_(list(codes)))).all()
    paths = {j.code: j.path for j in rows}
    unknown = sorted(set(codes) - set(paths))
    if unknown:
        raise AppError(
            422, "unknown_jurisdiction", "行政区划代码不存在", "unknown jurisdiction code", {"codes": unknown}
        )
    outside = sorted(code for code, path in paths.items() if not scope.covers(path))
    if outside:
        raise AppError(
            403,
            "forbidden",
            "只能共享本辖区及下级区划的信息",
            "you may share only your own jurisdiction and below",
            {"codes": outside},
        )
    return paths


def _audit(session: Session, scope: Scope, action: str, key: ExchangeApiKey, before: Any = None) -> None:
    audit.service.record(
        session,
        actor=scope.user,
        action=action,
        entity_type="exchange_api_key",
        entity_id=key.id or 0,
        before=before,
        after=snapshot(key, ("secret_hash",)),
    )


def create_key(session: Session, *, scope: Scope, data: ApiKeyCreate) -> tuple[ExchangeApiKey, str]:
    """A new key for a partner department within the caller's scope; the key itself is returned once."""
    paths = _scope_paths(session, scope, data.jurisdiction_codes)
    lookup_id, secret, raw = _new_secret()
    key = ExchangeApiKey(
        name=data.name,
        department=data.department,
        lookup_id=lookup_id,
        secret_hash=secret_hash(lookup_id, secret),
        jurisdiction_codes=list(data.jurisdiction_codes),
        fields=[f.value for f in data.fields],
        scope_path=_common_path(paths.values()),
        expires_at=_check_expiry(data.expires_at),
        created_by_id=scope.user.id,
    )
    session.add(key)
    session.flush()
    _audit(session, scope, "exchange_key.create", key)
    return key, raw


def get_in_scope(session: Session, scope: Scope, key_id: int) -> ExchangeApiKey:
    """A key the caller may manage (its divisions all inside the caller's scope); 404 otherwise."""
    key = session.get(ExchangeApiKey, key_id)
    if key is None or not key.scope_path.startswith(scope.path):
        raise not_found("共享密钥", "API key")
    return key


def list_in_scope(
    session: Session, scope: Scope, *, include_inactive: bool, limit: int, offset: int
) -> tuple[Sequence[ExchangeApiKey], int]:
    """Keys the caller may manage, newest first; by default only those still usable."""
    conditions: list[Any] = [col(ExchangeApiKey.scope_path).startswith(scope.path)]
    if not include_inactive:
        now = utcnow()
        conditions += [
            or_(col(ExchangeApiKey.revoked_at).is_(None), col(ExchangeApiKey.revoked_at) > now),
            col(ExchangeApiKey.expires_at) > now,
        ]
    total = session.execute(
        sa_select(func.count()).select_from(ExchangeApiKey).where(*conditions)
    ).scalar_one()
    rows = session.exec(
        select(ExchangeApiKey)
        .where(*conditions)
        .order_by(col(ExchangeApiKey.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return rows, total


def _refuse_inactive(session: Session, key: ExchangeApiKey) -> None:
    # Lock the row first: two concurrent rotations must not both hand out a successor.
    session.refresh(key, with_for_update=True)
    status = key_status(key)
    if status != "active":
        raise AppError(
            409,
            "api_key_inactive",
            "该密钥已吊销或已过期",
            "the key is already revoked or expired",
            {"status": status},
        )


def revoke_key(session: Session, *, scope: Scope, key: ExchangeApiKey, reason: str) -> ExchangeApiKey:
    """Stop a key at once; audited."""
    _refuse_inactive(session, key)
    before = snapshot(key, ("secret_hash",))
    key.revoked_at = utcnow()
    key.revoked_by_id = scope.user.id
    key.revoke_reason = reason
    session.add(key)
    session.flush()
    _audit(session, scope, "exchange_key.revoke", key, before)
    return key


def rotate_key(
    session: Session, *, scope: Scope, key: ExchangeApiKey, data: ApiKeyRotate
) -> tuple[ExchangeApiKey, str]:
    """A new key with the same department and scope; the old one stops now or after the grace period."""
    _refuse_inactive(session, key)
    # The scope is re-checked: the caller's own reach may have shrunk since the key was made.
    _scope_paths(session, scope, key.jurisdiction_codes)
    expires_at = _check_expiry(data.expires_at) if data.expires_at else aware(key.expires_at)
    lookup_id, secret, raw = _new_secret()
    new = ExchangeApiKey(
        name=key.name,
        department=key.department,
        lookup_id=lookup_id,
        secret_hash=secret_hash(lookup_id, secret),
        jurisdiction_codes=list(key.jurisdiction_codes),
        fields=list(key.fields),
        scope_path=key.scope_path,
        expires_at=expires_at,
        created_by_id=scope.user.id,
        rotated_from_id=key.id,
    )
    session.add(new)
    before = snapshot(key, ("secret_hash",))
    key.revoked_at = utcnow() + timedelta(hours=data.grace_hours)
    key.revoked_by_id = scope.user.id
    key.revoke_reason = "rotated"
    session.add(key)
    session.flush()
    _audit(session, scope, "exchange_key.rotate", key, before)
    _audit(session, scope, "exchange_key.create", new)
    return new, raw


def invalid_key(reason: str | None = None) -> AppError:
    """The 403 for a key that is unknown, revoked or expired (the reason only to its holder)."""
    return AppError(
        403,
        "invalid_api_key",
        "共享密钥无效、已吊销或已过期",
        "invalid, revoked or expired API key",
        {"reason": reason} if reason else None,
    )


def authenticate(session: Session, raw: str) -> ExchangeApiKey:
    """The active key matching ``raw``; 403 otherwise."""
    match = _KEY_RE.fullmatch(raw.strip()) if len(raw) <= 200 else None
    if match is None:
        raise invalid_key()
    lookup_id, secret = match.groups()
    key = session.exec(select(ExchangeApiKey).where(col(ExchangeApiKey.lookup_id) == lookup_id)).first()
    # Hash even when the id is unknown, so timing does not tell which ids exist.
    expected = key.secret_hash if key is not None else "0" * 64
    if not hmac.compare_digest(secret_hash(lookup_id, secret), expected) or key is None:
        raise invalid_key()
    status = key_status(key)
    if status != "active":
        raise invalid_key(status)
    return key


# ---- capture ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    at: datetime
    source: FeedSource
    source_id: int
    event: FeedEventType
    operator_id: int
    record_id: int | None


def _mark(session: Session, source: FeedSource) -> FeedCaptureMark:
    mark = session.get(FeedCaptureMark, source)
    if mark is None:
        mark = FeedCaptureMark(source=source, settled_through=0)
        session.add(mark)
    return mark


def _rating_candidates(session: Session, after: int) -> list[_Candidate]:
    captured = exists().where(
        col(FeedEntry.source) == FeedSource.rating_change, col(FeedEntry.source_id) == col(RatingChange.id)
    )
    stmt = (
        sa_select(col(RatingChange.id), col(RatingChange.operator_id), col(RatingChange.at))
        .where(col(RatingChange.id) > after, ~captured)
        .order_by(col(RatingChange.id))
        .limit(CAPTURE_BATCH)
    )
    return [
        _Candidate(aware(at), FeedSource.rating_change, rid, FeedEventType.class_change, operator_id, None)
        for rid, operator_id, at in session.execute(stmt)
    ]


def _version_candidates(session: Session, after: int) -> list[_Candidate]:
    version = IntegrityRecordVersion
    previous = aliased(IntegrityRecordVersion)
    verified = RecordState.VERIFIED.value
    shared_now = and_(
        col(version.change).in_([RecordChange.create, RecordChange.verify, RecordChange.correct]),
        col(version.snapshot)["state"].as_string() == verified,
    )
    # A revocation is news only to departments that were told of the record, i.e. when it was verified.
    revoked_after_sharing = and_(
        col(version.change) == RecordChange.revoke,
        exists().where(
            col(previous.record_id) == col(version.record_id),
            col(previous.version) == col(version.version) - 1,
            col(previous.snapshot)["state"].as_string() == verified,
        ),
    )
    captured = exists().where(
        col(FeedEntry.source) == FeedSource.record_version, col(FeedEntry.source_id) == col(version.id)
    )
    stmt = (
        sa_select(
            col(version.id),
            col(version.record_id),
            col(version.change),
            col(version.at),
            col(IntegrityRecord.operator_id),
        )
        .join(IntegrityRecord, col(IntegrityRecord.id) == col(version.record_id))
        .where(col(version.id) > after, or_(shared_now, revoked_after_sharing), ~captured)
        .order_by(col(version.id))
        .limit(CAPTURE_BATCH)
    )
    return [
        _Candidate(
            aware(at),
            FeedSource.record_version,
            vid,
            _VERSION_EVENTS[RecordChange(change)],
            operator_id,
            rid,
        )
        for vid, rid, change, at, operator_id in session.execute(stmt)
    ]


def _settle(
    session: Session, mark: FeedCaptureMark, id_column: Any, at_column: Any, bound: int | None, now: datetime
) -> None:
    """Move the mark past rows old enough that no transaction can still be adding rows below them."""
    conditions = [id_column > mark.settled_through, at_column < now - SETTLE_AFTER]
    if bound is not None:
        conditions.append(id_column <= bound)
    settled = session.execute(sa_select(func.max(id_column)).where(*conditions)).scalar()
    if settled is not None and settled > mark.settled_through:
        mark.settled_through = settled
        mark.updated_at = now
        session.add(mark)


def capture(session: Session) -> bool:
    """Copy newly visible shareable rows into the feed, numbered in order; True if more remain to copy."""
    if is_postgres(session):
        locked = session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _CAPTURE_LOCK}
        ).scalar_one()
        if not locked:
            # Another call is capturing now; its entries get higher numbers than any visible one, so reading
            # what is visible loses nothing, and the next call sees them.
            return False
    now = utcnow()
    rating_mark = _mark(session, FeedSource.rating_change)
    version_mark = _mark(session, FeedSource.record_version)
    ratings = _rating_candidates(session, rating_mark.settled_through)
    versions = _version_candidates(session, version_mark.settled_through)
    found = sorted(ratings + versions, key=lambda c: (c.at, c.source.value, c.source_id))
    session.add_all(
        FeedEntry(
            source=c.source,
            source_id=c.source_id,
            event=c.event,
            operator_id=c.operator_id,
            record_id=c.record_id,
            captured_at=now,
        )
        for c in found
    )
    rating_full = len(ratings) == CAPTURE_BATCH
    version_full = len(versions) == CAPTURE_BATCH
    _settle(
        session,
        rating_mark,
        col(RatingChange.id),
        col(RatingChange.at),
        ratings[-1].source_id if rating_full else None,
        now,
    )
    _settle(
        session,
        version_mark,
        col(IntegrityRecordVersion.id),
        col(IntegrityRecordVersion.at),
        versions[-1].source_id if version_full else None,
        now,
    )
    session.flush()
    return rating_full or version_full


# ---- the feed ---------------------------------------------------------------------------------------------


def encode_cursor(seq: int) -> str:
    """An opaque position in the feed."""
    return base64.urlsafe_b64encode(f"gpc1:{seq}".encode()).decode().rstrip("=")


def invalid_cursor() -> AppError:
    """The 422 for a cursor this feed did not hand out."""
    return AppError(422, "invalid_cursor", "游标无效", "invalid cursor")


def decode_cursor(cursor: str | None) -> int:
    """The position behind a cursor (0, the beginning, when none is given); 422 when it is not ours."""
    if cursor is None or cursor == "":
        return 0
    if not _CURSOR_RE.fullmatch(cursor):
        raise invalid_cursor()
    try:
        body = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_cursor() from None
    match = _CURSOR_BODY.fullmatch(body)
    if match is None:
        raise invalid_cursor()
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class FeedResult:
    """One page: the events, where they end, whether more are ready, and the position read from."""

    events: list[FeedEvent]
    cursor_from: int
    cursor_to: int
    has_more: bool


def event_types(fields: Iterable[str]) -> list[FeedEventType]:
    """The event types a key with these fields receives."""
    chosen = set(fields)
    types: list[FeedEventType] = []
    if FeedField.integrity_class in chosen:
        types.append(FeedEventType.class_change)
    if FeedField.record_kind in chosen:
        types += [FeedEventType.record_verified, FeedEventType.record_corrected, FeedEventType.record_revoked]
    return types


def _operator_part(operator: Operator, fields: set[str]) -> FeedOperator | None:
    data: dict[str, Any] = {}
    if FeedField.operator_identity in fields:
        data |= {"uscc": operator.uscc, "name": operator.name}
    if FeedField.operator_details in fields:
        data |= {"sector": operator.sector.value, "address": operator.address}
    if FeedField.legal_representative in fields:
        data["legal_representative"] = operator.legal_representative
    return FeedOperator.model_validate(data) if data else None


def _class_part(change: RatingChange, fields: set[str]) -> FeedClassChange:
    data: dict[str, Any] = {
        "from_class": change.from_cls,
        "to_class": change.to_cls,
        "as_of": change.as_of,
        "rules_version": change.rules_version,
        "trigger": change.trigger,
    }
    if FeedField.class_reasons in fields:
        data["reasons"] = [
            FeedReason.model_validate(
                {key: reason.get(key) for key in FeedReason.model_fields}
                | {"record_ids": [int(i) for i in reason.get("record_ids", [])]}
            )
            for reason in change.reasons
        ]
    return FeedClassChange.model_validate(data)


def _record_part(version: IntegrityRecordVersion, fields: set[str]) -> FeedRecord:
    snap = version.snapshot
    data: dict[str, Any] = {"record_id": version.record_id, "version": version.version}
    kind = RecordKind(snap["kind"])
    source = RecordSource(snap["source"])
    info = KIND_INFO[kind]
    data |= {
        "kind": kind,
        "kind_label_zh": info.label_zh,
        "kind_label_en": info.label_en,
        "bad": info.bad,
        "source": source,
    }
    if FeedField.record_dates in fields:
        data["fact_date"] = snap.get("fact_date")
    if FeedField.record_findings in fields:
        data["instrument_still_in_use"] = snap.get("instrument_still_in_use")
        data["social_impact"] = snap.get("social_impact")
    if FeedField.record_summary in fields:
        data["summary"] = snap.get("summary") or ""
    if FeedField.evidence_refs in fields:
        data["evidence_refs"] = list(snap.get("evidence_refs") or [])
        if source in DOCUMENT_REF_SOURCES:
            data["document_ref"] = snap.get("source_ref")
    return FeedRecord.model_validate(data)


def _key_paths(session: Session, key: ExchangeApiKey) -> list[str]:
    return list(
        session.exec(
            select(Jurisdiction.path).where(col(Jurisdiction.code).in_(list(key.jurisdiction_codes)))
        ).all()
    )


def read_feed(session: Session, key: ExchangeApiKey, *, cursor: int, limit: int) -> FeedResult:
    """The key's events after ``cursor``, oldest first, within its divisions and projected to its fields."""
    backlog = capture(session)
    # Everything at or below the highest visible number is final (see the module's note): bound the page by it.
    high = session.execute(sa_select(func.max(col(FeedEntry.seq)))).scalar() or 0
    if cursor > high:
        raise invalid_cursor()
    fields = set(key.fields)
    types = event_types(fields)
    paths = _key_paths(session, key)
    rows: list[tuple[FeedEntry, Operator]] = []
    if types and paths:
        stmt = (
            select(FeedEntry, Operator)
            .join(Operator, col(Operator.id) == col(FeedEntry.operator_id))
            .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
            .where(
                col(FeedEntry.seq) > cursor,
                col(FeedEntry.seq) <= high,
                col(FeedEntry.event).in_(types),
                or_(*(col(Jurisdiction.path).startswith(path) for path in paths)),
            )
            .order_by(col(FeedEntry.seq))
            .limit(limit + 1)
        )
        rows = [(entry, operator) for entry, operator in session.exec(stmt).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    changes = _by_id(
        session, RatingChange, [e.source_id for e, _ in rows if e.source is FeedSource.rating_change]
    )
    versions = _by_id(
        session,
        IntegrityRecordVersion,
        [e.source_id for e, _ in rows if e.source is FeedSource.record_version],
    )
    events: list[FeedEvent] = []
    for entry, operator in rows:
        seq = entry.seq or 0
        data: dict[str, Any] = {
            "cursor": encode_cursor(seq),
            "type": entry.event,
            "operator_id": operator.id,
            "jurisdiction_code": operator.jurisdiction_code,
        }
        part = _operator_part(operator, fields)
        if part is not None:
            data["operator"] = part
        if entry.source is FeedSource.rating_change:
            change = changes[entry.source_id]
            data["occurred_at"] = aware(change.at)
            data["class_change"] = _class_part(change, fields)
        else:
            version = versions[entry.source_id]
            data["occurred_at"] = aware(version.at)
            data["record"] = _record_part(version, fields)
        events.append(FeedEvent.model_validate(data))
    last = (rows[-1][0].seq or 0) if more else high
    return FeedResult(events, cursor, max(last, cursor), more or backlog)


def _by_id(session: Session, model: type[Any], ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.exec(select(model).where(col(model.id).in_(ids))).all()}


@dataclass(frozen=True)
class PartnerReader:
    """A partner department reading the feed: the audit's actor (it has no account; its key says who)."""

    id: int | None = None
    role: str = "department"


def log_read(
    session: Session,
    key: ExchangeApiKey,
    result: FeedResult,
    *,
    client_ip: str,
    request_id: str | None = None,
) -> FeedReadLog:
    """Log one feed call (Art. 20): the key's read log, and an entry in the audit chain like staff reads."""
    entry = FeedReadLog(
        api_key_id=key.id or 0,
        department=key.department,
        cursor_from=result.cursor_from,
        cursor_to=result.cursor_to,
        rows=len(result.events),
        has_more=result.has_more,
        client_ip=client_ip[:64],
    )
    session.add(entry)
    session.flush()
    record_read(
        session,
        actor=PartnerReader(),
        action="feed.read",
        entity_type="exchange_key",
        entity_id=key.id or 0,
        after={
            "department": key.department,
            "read_log_id": entry.id,
            "cursor_from": result.cursor_from,
            "cursor_to": result.cursor_to,
            "rows": len(result.events),
            # Whose information was shared, so an audit can say which departments received an operator's.
            "operator_ids": sorted({e.operator_id for e in result.events}),
        },
        request_id=request_id,
    )
    return entry


def list_read_log(
    session: Session, scope: Scope, *, api_key_id: int | None, limit: int, offset: int
) -> tuple[Sequence[FeedReadLog], int]:
    """Feed calls by the keys the caller may manage, newest first."""
    conditions: list[Any] = [col(ExchangeApiKey.scope_path).startswith(scope.path)]
    if api_key_id is not None:
        conditions.append(col(FeedReadLog.api_key_id) == api_key_id)
    base = select(FeedReadLog).join(ExchangeApiKey, col(ExchangeApiKey.id) == col(FeedReadLog.api_key_id))
    total = session.execute(
        sa_select(func.count())
        .select_from(FeedReadLog)
        .join(ExchangeApiKey, col(ExchangeApiKey.id) == col(FeedReadLog.api_key_id))
        .where(*conditions)
    ).scalar_one()
    rows = session.exec(
        base.where(*conditions).order_by(col(FeedReadLog.id).desc()).limit(limit).offset(offset)
    ).all()
    return rows, total
