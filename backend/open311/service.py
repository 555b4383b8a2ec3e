"""Open311 GeoReport v2 over our complaints: services are the categories, requests the consumer complaints.

Reading is public and shows only the public subset (see ``schemas.Open311Request``): a request names its operator
(masked where a person's name is part of it) and shows its address and place only once the finding behind the
complaint, a verified record made from it, has passed the publication review (Art. 18, 19); before that a
complaint is an allegation, and an allegation is no integrity information to publish. Filing needs a client's
API key and goes through the same complaint service as the app (``backend.complaints.service.submit``),
under an account each client owns, so routing, idempotency, the outbox and every check are the ones the app
gets.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlmodel import Session, col, select

from backend import audit, ratelimit
from backend.audit.service import Actor, snapshot
from backend.auth import service as auth_service
from backend.auth.models import Account, Role
from backend.common.masking import public_operator_name
from backend.complaints import service as complaint_service
from backend.complaints.models import Complaint, ComplaintCategory, ComplaintSource, ComplaintStatus
from backend.complaints.schemas import ComplaintSubmission
from backend.config import get_settings
from backend.db import utcnow
from backend.errors import AppError, conflict, not_found
from backend.i18n import Locale
from backend.jurisdictions.models import Jurisdiction
from backend.media.factory import media_storage
from backend.open311.models import Open311Client, Open311Submission
from backend.open311.schemas import (
    Open311Attribute,
    Open311Request,
    Open311RequestCreated,
    Open311RequestIn,
    Open311Service,
    Open311ServiceDefinition,
)
from backend.operators.models import Operator
from backend.public.labels import CATEGORY_DESCRIPTIONS, CATEGORY_NAMES, STATUS_NAMES, Bilingual, pick
from backend.records.models import IntegrityRecord
from backend.records.rules import RecordState

#: The specification's default window and cap for a listing.
DEFAULT_WINDOW = timedelta(days=90)
MAX_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
KEY_PREFIX = "o311_"

OPEN_STATUSES = frozenset(
    {
        ComplaintStatus.received,
        ComplaintStatus.routed,
        ComplaintStatus.accepted,
        ComplaintStatus.investigating,
    }
)
_GROUP: Bilingual = ("计量", "metrology")
_CLOSED_NOTE: Bilingual = ("已办结", "Closed")
_HANDLING_NOTE: Bilingual = ("已受理，正在处理", "Accepted; being handled")
_NOTICE: Bilingual = (
    "投诉已登记，将转交属地市场监管部门，在法定期限内受理处理；处理结果不向社会公开投诉人信息。",
    "Received. It goes to the local market regulation bureau, which handles it within the statutory deadline; "
    "the complainant's identity is never published.",
)
_KEY_RE = re.compile(r"[\x20-\x7e]{1,100}")


# ---- services ---------------------------------------------------------------------------------------------


def _attribute(
    code: str, datatype: str, order: int, description: Bilingual, hint: Bilingual, locale: Locale
) -> Open311Attribute:
    return Open311Attribute.model_validate(
        {
            "variable": True,
            "code": code,
            "datatype": datatype,
            "required": False,
            "datatype_description": pick(hint, locale),
            "order": order,
            "description": pick(description, locale),
            "values": [],
        }
    )


def _attributes(category: ComplaintCategory, locale: Locale) -> list[Open311Attribute]:
    attributes = [
        _attribute(
            "qr_token",
            "string",
            1,
            (
                "经营者或计量器具二维码的内容（/q/ 之后的部分）",
                "The scanned sticker's token (the part after /q/)",
            ),
            ("二维码内容", "QR token"),
            locale,
        ),
        _attribute(
            "operator_id",
            "number",
            2,
            (
                "被投诉经营者的编号（可在公开查询中找到）",
                "The operator's id (from the public operator search)",
            ),
            ("正整数", "a positive integer"),
            locale,
        ),
    ]
    if category is ComplaintCategory.short_weight:
        attributes += [
            _attribute(
                "declared_g",
                "number",
                3,
                ("小票上的结算重量", "The weight charged, as on the receipt"),
                ("克", "grams"),
                locale,
            ),
            _attribute(
                "measured_g",
                "number",
                4,
                ("复称得到的重量", "The weight found when re-weighed"),
                ("克", "grams"),
                locale,
            ),
        ]
    return attributes


def services(locale: Locale) -> list[Open311Service]:
    """Every complaint category as a service, named in the caller's language."""
    return [
        Open311Service(
            service_code=category.value,
            service_name=pick(CATEGORY_NAMES[category], locale),
            description=pick(CATEGORY_DESCRIPTIONS[category], locale),
            metadata=True,
            type="realtime",
            keywords=f"{CATEGORY_NAMES[category][0]}, {CATEGORY_NAMES[category][1]}",
            group=pick(_GROUP, locale),
        )
        for category in ComplaintCategory
    ]


def _category(service_code: str) -> ComplaintCategory:
    try:
        return ComplaintCategory(service_code)
    except ValueError:
        raise not_found("服务类型", "service") from None


def service_definition(service_code: str, locale: Locale) -> Open311ServiceDefinition:
    """The attributes a service accepts; 404 for an unknown service code."""
    category = _category(service_code)
    return Open311ServiceDefinition(service_code=category.value, attributes=_attributes(category, locale))


# ---- reading requests -------------------------------------------------------------------------------------


def bad_request(code: str, message_zh: str, message_en: str, details: Any = None) -> AppError:
    """A 400: GeoReport reports bad arguments with it, in JSON and XML alike."""
    return AppError(400, code, message_zh, message_en, details)


@dataclass(frozen=True)
class RequestQuery:
    """A parsed GET requests query."""

    ids: tuple[int, ...] | None
    categories: tuple[ComplaintCategory, ...] | None
    start: datetime | None
    end: datetime | None
    open_: bool | None
    jurisdiction_code: str | None


def _datetime(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise bad_request(
            "invalid_datetime", f"{name} 须为 ISO 8601 时间", f"{name} must be an ISO 8601 date-time"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(get_settings().timezone))
    # Compared in UTC: SQLite keeps stored times as UTC text without their offset.
    return value.astimezone(UTC)


def _split(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def parse_query(
    *,
    service_request_id: str | None,
    service_code: str | None,
    start_date: str | None,
    end_date: str | None,
    status: str | None,
    jurisdiction_id: str | None,
) -> RequestQuery:
    """Check and parse the GET requests arguments; 400 for anything malformed."""
    ids: tuple[int, ...] | None = None
    if service_request_id:
        parts = _split(service_request_id)
        if len(parts) > MAX_RESULTS or not all(p.isdigit() and 0 < len(p) <= 18 for p in parts):
            raise bad_request(
                "invalid_service_request_id",
                f"service_request_id 须为逗号分隔的数字编号，最多 {MAX_RESULTS} 个",
                f"service_request_id must be comma-separated numeric ids, at most {MAX_RESULTS}",
            )
        ids = tuple(int(p) for p in parts)
    categories = None
    if service_code:
        try:
            categories = tuple(ComplaintCategory(code) for code in _split(service_code))
        except ValueError:
            raise bad_request(
                "invalid_service_code",
                "service_code 不存在",
                "unknown service_code",
                {"service_code": service_code},
            ) from None
    open_: bool | None = None
    if status:
        wanted = set(_split(status))
        if not wanted <= {"open", "closed"}:
            raise bad_request("invalid_status", "status 须为 open 或 closed", "status must be open or closed")
        open_ = None if wanted == {"open", "closed"} else "open" in wanted
    start = _datetime("start_date", start_date) if start_date else None
    end = _datetime("end_date", end_date) if end_date else None
    if start and end and (end < start or end - start > MAX_WINDOW):
        raise bad_request(
            "invalid_date_range",
            "end_date 须晚于 start_date，且跨度不超过 90 天",
            "end_date must follow start_date by at most 90 days",
        )
    if jurisdiction_id is not None and not re.fullmatch(r"\d{6}", jurisdiction_id):
        raise bad_request(
            "invalid_jurisdiction_code",
            "jurisdiction_id 须为 6 位行政区划代码",
            "jurisdiction_id must be 6 digits",
        )
    return RequestQuery(ids, categories, start, end, open_, jurisdiction_id)


def _local(at: datetime | None) -> datetime | None:
    """A stored UTC time in the bureau's time zone, to the second (what a civic client shows)."""
    if at is None:
        return None
    zone = ZoneInfo(get_settings().timezone)
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.astimezone(zone).replace(microsecond=0)


def _status_note(status: ComplaintStatus, locale: Locale) -> str:
    # The stage only: whether a complaint was found true is integrity information that is published through
    # the publication review (Art. 18, 19), never through this feed.
    if status in (ComplaintStatus.received, ComplaintStatus.routed):
        return pick(STATUS_NAMES[status], locale)
    if status in OPEN_STATUSES:
        return pick(_HANDLING_NOTE, locale)
    return pick(_CLOSED_NOTE, locale)


def complaint_ref(complaint_id: int) -> str:
    """The ``source_ref`` of the records a case makes when it finds this complaint true."""
    return f"complaint:{complaint_id}"


def published_operators(session: Session, complaint_ids: Sequence[int]) -> dict[int, Operator]:
    """Per complaint, the operator of a verified record made from it that passed the publication review."""
    refs = {complaint_ref(i): i for i in complaint_ids}
    if not refs:
        return {}
    rows = session.execute(
        select(col(IntegrityRecord.source_ref), Operator)
        .join(Operator, col(Operator.id) == col(IntegrityRecord.operator_id))
        .where(
            col(IntegrityRecord.source_ref).in_(sorted(refs)),
            col(IntegrityRecord.state) == RecordState.VERIFIED,
            col(IntegrityRecord.public_eligible).is_(True),
        )
        .order_by(col(IntegrityRecord.id))
    ).all()
    found: dict[int, Operator] = {}
    for ref, operator in rows:
        found.setdefault(refs[str(ref)], operator)
    return found


def _public_request(
    complaint: Complaint, published: Operator | None, bureau: str | None, locale: Locale
) -> Open311Request:
    category = complaint.category
    name = pick(CATEGORY_NAMES.get(category, (category.value, category.value)), locale)
    description = name
    lat: float | None = None
    lon: float | None = None
    if published is not None:
        shown = public_operator_name(published.name, published.legal_representative)
        description += f"；被投诉经营者：{shown}" if locale == "zh-CN" else f"; operator: {shown}"
        lat, lon = published.lat, published.lon
    elif complaint.operator_id is None:
        # Nobody is named: the geotag's cell says where, not whom.
        lat, lon = complaint.lat, complaint.lon
    if lat is None or lon is None:
        lat = lon = None
    requested = _local(complaint.created_at)
    assert requested is not None
    return Open311Request(
        service_request_id=str(complaint.id),
        status="open" if complaint.status in OPEN_STATUSES else "closed",
        status_notes=_status_note(complaint.status, locale),
        service_name=name,
        service_code=category.value,
        description=description,
        agency_responsible=bureau,
        service_notice=None,
        requested_datetime=requested,
        updated_datetime=_local(complaint.updated_at),
        expected_datetime=None,
        address=published.address if published is not None else None,
        address_id=None,
        zipcode=None,
        lat=lat,
        long=lon,
        media_url=None,
    )


def _jurisdiction_path(session: Session, code: str) -> str:
    jurisdiction = session.get(Jurisdiction, code)
    if jurisdiction is None:
        raise not_found("辖区", "jurisdiction")
    return jurisdiction.path


def list_requests(
    session: Session, query: RequestQuery, locale: Locale, *, now: datetime | None = None
) -> list[Open311Request]:
    """Consumer complaints as public service requests, newest first, at most 1000."""
    stmt = (
        select(Complaint, col(Jurisdiction.bureau_name))
        .outerjoin(Jurisdiction, col(Jurisdiction.code) == col(Complaint.jurisdiction_code))
        .where(col(Complaint.source) == ComplaintSource.consumer)
    )
    if query.jurisdiction_code is not None:
        path = _jurisdiction_path(session, query.jurisdiction_code)
        stmt = stmt.where(col(Jurisdiction.path).startswith(path, autoescape=True))
    if query.ids is not None:
        # The specification: a list of ids overrides every other argument.
        stmt = stmt.where(col(Complaint.id).in_(query.ids))
    else:
        if query.categories:
            stmt = stmt.where(col(Complaint.category).in_(query.categories))
        if query.open_ is not None:
            in_open = col(Complaint.status).in_(OPEN_STATUSES)
            stmt = stmt.where(in_open if query.open_ else ~in_open)
        start = query.start
        if start is None and query.end is None:
            start = (now or utcnow()) - DEFAULT_WINDOW
        if start is not None:
            stmt = stmt.where(col(Complaint.created_at) >= start)
        if query.end is not None:
            stmt = stmt.where(col(Complaint.created_at) <= query.end)
    rows = session.execute(
        stmt.order_by(col(Complaint.created_at).desc(), col(Complaint.id).desc()).limit(MAX_RESULTS)
    ).all()
    published = published_operators(session, [c.id for c, _ in rows if c.id is not None])
    return [_public_request(c, published.get(c.id or 0), bureau, locale) for c, bureau in rows]


def get_request(session: Session, request_id: str, locale: Locale) -> Open311Request:
    """One consumer complaint as a public service request; 404 otherwise."""
    if not request_id.isdigit() or len(request_id) > 18:
        raise not_found("服务请求", "service request")
    found = list_requests(session, RequestQuery((int(request_id),), None, None, None, None, None), locale)
    if not found:
        raise not_found("服务请求", "service request")
    return found[0]


# ---- filing -----------------------------------------------------------------------------------------------


def key_hash(api_key: str) -> str:
    """How a key is stored and looked up."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def authenticate(session: Session, api_key: str | None) -> tuple[Open311Client, Account]:
    """The active client holding this key, and the account it files under; 403 otherwise."""
    client = (
        session.execute(
            select(Open311Client).where(col(Open311Client.api_key_hash) == key_hash(api_key))
        ).scalar_one_or_none()
        if api_key and len(api_key) <= 200
        else None
    )
    account = session.get(Account, client.account_id) if client is not None else None
    if client is None or not client.is_active or account is None or not account.is_active:
        raise AppError(403, "invalid_api_key", "api_key 无效或已停用", "invalid or revoked api_key")
    return client, account


def idempotency_key(raw: str | None) -> str:
    """The client's Idempotency-Key when it sends one (same rules as the app), else a fresh one."""
    if raw is None:
        return f"open311-{uuid.uuid4().hex}"
    if not _KEY_RE.fullmatch(raw) or not raw.strip():
        raise bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key 须为 1–100 个可打印 ASCII 字符",
            "Idempotency-Key must be 1–100 printable ASCII characters",
        )
    return raw


def parse_request_in(fields: dict[str, str]) -> Open311RequestIn:
    """The POST arguments (``attribute[x]`` unwrapped), checked; 400 with the field errors otherwise."""
    values: dict[str, str] = {}
    for name, value in fields.items():
        match = re.fullmatch(r"attribute\[(\w{1,40})\]", name)
        values[match.group(1) if match else name] = value
    if not values.get("service_code"):
        raise bad_request("service_code_required", "缺少 service_code", "service_code is required")
    try:
        return Open311RequestIn.model_validate(values)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "type": e["type"], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise bad_request("invalid_request", "请求参数无效", "invalid request arguments", details) from None


def submission_json(data: Open311RequestIn) -> dict[str, Any]:
    """The app's complaint JSON for an Open311 request (the same shape the phone sends)."""
    if (data.lat is None) != (data.long is None):
        raise bad_request("invalid_location", "lat 与 long 须同时提供", "give both lat and long")
    if (data.declared_g is None) != (data.measured_g is None):
        raise bad_request(
            "invalid_weighing", "declared_g 与 measured_g 须同时提供", "give both declared_g and measured_g"
        )
    raw: dict[str, Any] = {"category": data.service_code.value, "description": data.description or ""}
    if data.lat is not None and data.long is not None:
        raw["location"] = {"lon": data.long, "lat": data.lat, "coord_system": "wgs84"}
    if data.address_string:
        raw["address"] = data.address_string
    if data.qr_token:
        raw["qr_token"] = data.qr_token
    if data.operator_id is not None:
        raw["operator_id"] = data.operator_id
    if data.declared_g is not None and data.measured_g is not None:
        raw["weighing"] = {"declared_g": str(data.declared_g), "measured_g": str(data.measured_g)}
    if data.phone:
        raw["contact"] = {"name": _person_name(data)[:50], "phone": data.phone}
    return raw


def _person_name(data: Open311RequestIn) -> str:
    return " ".join(part for part in (data.first_name, data.last_name) if part)


def _as_request_error(exc: AppError) -> AppError:
    # The complaint service answers bad input with 422; GeoReport clients expect 400 for it.
    if exc.status != 422:
        return exc
    return AppError(400, exc.code, exc.message_zh, exc.message_en, exc.details, exc.headers)


def create_request(
    session: Session,
    *,
    client: Open311Client,
    account: Account,
    data: Open311RequestIn,
    key: str,
    locale: Locale,
) -> Open311RequestCreated:
    """File a complaint for a client through the app's complaint service; a retry with its key files once."""
    raw = submission_json(data)
    try:
        submission_data = ComplaintSubmission.model_validate(raw)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "type": e["type"], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise bad_request("invalid_request", "请求参数无效", "invalid request arguments", details) from None
    submission = complaint_service.Submission(
        data=submission_data, photos=(), request_hash=complaint_service.request_hash(raw, [])
    )
    try:
        complaint = complaint_service.find_replay(
            session, account_id=account.id or 0, key=key, body_hash=submission.request_hash
        )
        if complaint is None:
            ratelimit.hit("open311-client", str(client.id), get_settings().open311_rate_per_client)
            complaint, _created = complaint_service.submit(
                session,
                account=account,
                key=key,
                submission=submission,
                storage=media_storage(),
            )
    except AppError as exc:
        raise _as_request_error(exc) from None
    if session.get(Open311Submission, complaint.id) is None:
        name = _person_name(data)
        session.add(
            Open311Submission(
                complaint_id=complaint.id or 0,
                client_id=client.id or 0,
                client_account_ref=data.account_id or data.device_id,
                contact_name=name if name and not data.phone else None,
                contact_email=str(data.email) if data.email else None,
                media_url=data.media_url,
            )
        )
        session.flush()
    return Open311RequestCreated(
        service_request_id=str(complaint.id),
        service_notice=pick(_NOTICE, locale),
        account_id=data.account_id or str(account.id),
    )


# ---- clients (CLI) ----------------------------------------------------------------------------------------


def _username(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30] or "client"
    return f"open311-{slug}-{secrets.token_hex(3)}"


def create_client(session: Session, *, name: str, actor: Actor) -> tuple[Open311Client, str]:
    """A new client, its filing account and its API key (returned once, stored only as a hash); audited."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise bad_request("invalid_name", "名称须为 1–100 个字符", "the name must be 1–100 characters")
    if session.execute(select(col(Open311Client.id)).where(col(Open311Client.name) == name)).first():
        raise conflict("duplicate_client", "该名称的客户端已存在", "a client with this name exists")
    account = auth_service.create_account(
        session,
        actor=actor,
        username=_username(name),
        # Nobody signs in as the client's account: it exists to own the complaints the client files.
        password=secrets.token_urlsafe(32),
        role=Role.consumer_device,
        display_name=f"Open311: {name}"[:100],
        organisation=name,
        check_policy=False,
    )
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = Open311Client(
        name=name, api_key_hash=key_hash(api_key), key_prefix=api_key[:12], account_id=account.id or 0
    )
    session.add(client)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="open311_client.create",
        entity_type="open311_client",
        entity_id=client.id or 0,
        after=snapshot(client, ("api_key_hash",)),
    )
    return client, api_key


def revoke_client(session: Session, *, name: str, actor: Actor) -> Open311Client:
    """Stop a client's key and its account; audited."""
    client: Open311Client | None = session.execute(
        select(Open311Client).where(col(Open311Client.name) == name.strip())
    ).scalar_one_or_none()
    if client is None:
        raise not_found("Open311 客户端", "Open311 client")
    before = snapshot(client, ("api_key_hash",))
    client.is_active = False
    client.revoked_at = utcnow()
    account = session.get(Account, client.account_id)
    if account is not None:
        account.is_active = False
        session.add(account)
    session.add(client)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="open311_client.revoke",
        entity_type="open311_client",
        entity_id=client.id or 0,
        before=before,
        after=snapshot(client, ("api_key_hash",)),
    )
    return client


def list_clients(session: Session) -> Sequence[Open311Client]:
    """Every client, oldest first."""
    return session.execute(select(Open311Client).order_by(col(Open311Client.id))).scalars().all()


def client_row(client: Open311Client) -> str:
    """One client as a line of JSON for the CLI (never the key or its hash)."""
    return json.dumps(
        {
            "id": client.id,
            "name": client.name,
            "key_prefix": client.key_prefix,
            "active": client.is_active,
            "account_id": client.account_id,
        },
        ensure_ascii=False,
    )
