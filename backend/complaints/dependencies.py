"""Request-side dependencies for complaints: the early filer check, the idempotency key and the multipart parse.

The upload is parsed and its photos validated before the request touches the database, so a slow phone
upload never holds a connection or (on SQLite) the write lock; only the bearer token's signature is checked
before the body is read, so strangers cannot make us parse 50 MB.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import aclosing
from typing import Annotated, Any, Final

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from python_multipart.multipart import parse_options_header
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from backend import ratelimit
from backend.auth.dependencies import oauth2_scheme
from backend.auth.models import BUREAU_READERS, Account, Role
from backend.auth.scope import Scope
from backend.auth.security import AccessClaims, decode_access_token, unauthorized
from backend.auth.service import term_is_current
from backend.complaints.models import PhotoKind
from backend.complaints.schemas import MAX_PHOTOS, ComplaintSubmission
from backend.complaints.service import FILER_ROLES, IncomingPhoto, Submission, request_hash
from backend.config import get_settings
from backend.dates import bureau_date
from backend.db import SessionDep
from backend.errors import AppError, forbidden
from backend.jurisdictions.models import Jurisdiction
from backend.media.processing import MediaError, validate
from backend.uploads.schemas import ComplaintJsonSubmission

# Printable ASCII: a UUID, a ULID or anything a phone generates; never blank.
_KEY_RE = re.compile(r"[\x20-\x7e]{1,100}")


def _filer_claims(token: Annotated[str | None, Depends(oauth2_scheme)]) -> AccessClaims:
    if not token:
        raise unauthorized("not_authenticated", "请先登录", "not authenticated")
    claims = decode_access_token(token)
    if claims.role not in FILER_ROLES:
        raise forbidden(
            "仅消费者和计量诚信监督员可提交投诉", "only consumers and supervisors file complaints"
        )
    return claims


FilerClaims = Annotated[AccessClaims, Depends(_filer_claims)]


def _idempotency_key(
    idempotency_key: Annotated[
        str | None,
        # Documented by hand as a required header (IDEMPOTENCY_KEY_PARAMETER); optional here so that a
        # missing key gets its own error code rather than a generic validation error.
        Header(alias="Idempotency-Key", include_in_schema=False),
    ] = None,
) -> str:
    if idempotency_key is None:
        raise AppError(
            422,
            "idempotency_key_required",
            "缺少 Idempotency-Key 请求头",
            "the Idempotency-Key header is required",
        )
    if not _KEY_RE.fullmatch(idempotency_key) or not idempotency_key.strip():
        raise AppError(
            422,
            "invalid_idempotency_key",
            "Idempotency-Key 须为 1–100 个可打印 ASCII 字符",
            "Idempotency-Key must be 1–100 printable ASCII characters",
        )
    return idempotency_key


IdempotencyKeyHeader = Annotated[str, Depends(_idempotency_key)]

#: The OpenAPI description of the header.
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "1–100 printable ASCII characters: new for each complaint, the same on every retry of it.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[\\x20-\\x7e]{1,100}$"},
}


def _too_many_photos(count: int | None = None) -> AppError:
    return AppError(
        422,
        "too_many_photos",
        f"每件投诉最多上传 {MAX_PHOTOS} 张照片",
        f"at most {MAX_PHOTOS} photos per complaint",
        {"max": MAX_PHOTOS, "received": count},
    )


def _too_large(code: str, zh: str, en: str, limit: int, photo: int | None = None) -> AppError:
    details: dict[str, Any] = {"limit_bytes": limit}
    if photo is not None:
        details["photo"] = photo
        details["reason"] = "too_many_bytes"
    return AppError(413, code, zh, en, details)


def _photo_error(index: int, exc: MediaError) -> AppError:
    return AppError(
        exc.status, exc.code, exc.message_zh, exc.message_en, {"photo": index, "reason": exc.reason}
    )


class _NotUtf8(str):
    """A multipart text part whose bytes are not UTF-8 (Starlette would read them as Latin-1 and go on)."""

    original: bytes


class _Utf8MultiPartParser(MultiPartParser):
    """Starlette's parser, except that a text part that is not UTF-8 is marked rather than silently garbled."""

    def on_part_end(self) -> None:
        """Keep a text part decoded as UTF-8, or marked with its original bytes."""
        part = self._current_part
        if part.file is not None:
            super().on_part_end()
            return
        data = bytes(part.data)
        try:
            text: str = data.decode("utf-8")
        except UnicodeDecodeError:
            marked = _NotUtf8(data.decode("latin-1"))
            marked.original = data
            text = marked
        self.items.append((part.field_name, text))


async def _parse_form(request: Request, *, max_files: int, max_fields: int, max_part_size: int) -> FormData:
    """``request.form()`` with the strict-UTF-8 parser for multipart bodies."""
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
    try:
        async with aclosing(request.stream()) as stream:
            parser = _Utf8MultiPartParser(
                request.headers,
                stream,
                max_files=max_files,
                max_fields=max_fields,
                max_part_size=max_part_size,
            )
            return await parser.parse()
    except MultiPartException as exc:
        raise StarletteHTTPException(status_code=400, detail=exc.message) from exc


async def _read_form(request: Request) -> tuple[bytes, list[bytes]]:
    """The raw JSON part and the photo parts, within every limit."""
    settings = get_settings()
    content_type = request.headers.get("content-type", "").lower()
    # A submission without photos may come URL-encoded (what many HTTP clients send for fields alone).
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise AppError(
            415,
            "unsupported_media_type",
            f"此地址只接受 multipart/form-data；应用请以 application/json 提交到 {JSON_PATH}",
            f"this path takes multipart/form-data only; the app posts application/json to {JSON_PATH}",
            {"accepted": ["multipart/form-data"], "json_path": JSON_PATH},
        )
    try:
        # A few files over the limit are still parsed so the answer can be the precise too_many_photos.
        form = await _parse_form(
            request, max_files=MAX_PHOTOS + 4, max_fields=4, max_part_size=settings.complaint_json_max_bytes
        )
    except StarletteHTTPException as exc:
        detail = str(exc.detail)
        if detail.startswith("Too many files"):
            raise _too_many_photos() from None
        if detail.startswith("Part exceeded"):
            raise _too_large(
                "complaint_too_large",
                "投诉内容过大",
                "the complaint part is too large",
                settings.complaint_json_max_bytes,
            ) from None
        raise AppError(
            400, "invalid_multipart", "请求格式无效", "malformed multipart body", {"reason": detail}
        ) from None
    try:
        unexpected = sorted({key for key in form if key not in ("complaint", "photos")})
        if unexpected:
            raise AppError(
                422,
                "unexpected_part",
                "请求包含无法识别的部分",
                "unexpected multipart part",
                {"parts": unexpected[:10], "expected": ["complaint", "photos"]},
            )
        complaint_parts = form.getlist("complaint")
        if len(complaint_parts) != 1:
            raise AppError(
                422,
                "complaint_part_required",
                "须有且仅有一个 complaint 部分",
                "exactly one complaint part is needed",
            )
        photo_parts = form.getlist("photos")
        if len(photo_parts) > MAX_PHOTOS:
            raise _too_many_photos(len(photo_parts))
        part = complaint_parts[0]
        if isinstance(part, UploadFile):
            raw_json = await part.read(settings.complaint_json_max_bytes + 1)
            if len(raw_json) > settings.complaint_json_max_bytes:
                raise _too_large(
                    "complaint_too_large",
                    "投诉内容过大",
                    "the complaint part is too large",
                    settings.complaint_json_max_bytes,
                )
        else:
            # A text part that was not UTF-8 keeps its bytes, and fails the JSON parse as invalid_json.
            raw_json = part.original if isinstance(part, _NotUtf8) else part.encode("utf-8")
        photos: list[bytes] = []
        total = len(raw_json)
        for index, photo_part in enumerate(photo_parts):
            if not isinstance(photo_part, UploadFile):
                raise AppError(
                    422,
                    "invalid_photo_part",
                    "photos 须为文件",
                    "each photos part must be a file",
                    {"photo": index},
                )
            data = await photo_part.read(settings.complaint_photo_max_bytes + 1)
            if len(data) > settings.complaint_photo_max_bytes:
                limit = settings.complaint_photo_max_bytes
                raise _too_large(
                    "media_too_large",
                    f"第 {index + 1} 张照片过大，单张不能超过 {limit // 1_048_576} MB",
                    f"photo {index + 1} is too large; the limit is {limit // 1_048_576} MB per photo",
                    limit,
                    index,
                )
            total += len(data)
            if total > settings.complaint_request_max_bytes:
                raise _too_large(
                    "payload_too_large",
                    "照片总量过大，请减少照片数量",
                    "the photos are too large together; send fewer",
                    settings.complaint_request_max_bytes,
                )
            photos.append(data)
    finally:
        await form.close()
    return raw_json, photos


def _parse_json(
    raw_json: bytes,
    model: type[ComplaintSubmission] = ComplaintSubmission,
    loc: tuple[str, ...] = ("complaint",),
) -> tuple[dict[str, Any], ComplaintSubmission]:
    try:
        raw = json.loads(raw_json.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AppError(
            422, "invalid_json", "complaint 部分不是合法的 JSON", "the complaint part is not valid JSON"
        ) from None
    if not isinstance(raw, dict):
        raise AppError(
            422, "invalid_json", "complaint 部分须为 JSON 对象", "the complaint part must be a JSON object"
        )
    try:
        data = model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *loc, *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    return raw, data


def validate_photo(index: int, data: bytes) -> IncomingPhoto:
    """Check one photo's bytes as every complaint photo is checked; 413/415/422 with its index otherwise."""
    settings = get_settings()
    try:
        info = validate(data, settings.complaint_photo_max_bytes, settings.complaint_photo_max_pixels)
    except MediaError as exc:
        raise _photo_error(index, exc) from None
    except Exception:
        # validate() promises MediaError for bad input; whatever else a decoder throws is still bad input.
        raise AppError(
            422,
            "media_rejected",
            "图片无法解码，文件可能已损坏",
            "the image could not be decoded",
            {"photo": index, "reason": "corrupt"},
        ) from None
    return IncomingPhoto(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=info.format,
        width=info.width,
        height=info.height,
        kind=PhotoKind.other,
    )


#: Where the web page posts its multipart form; ``POST /api/v1/complaints`` takes the app's JSON only.
FORM_PATH: Final = "/api/v1/complaint-form"
#: The app's JSON submission (photos uploaded ahead).
JSON_PATH: Final = "/api/v1/complaints"


async def _admit(request: Request, claims: AccessClaims, session: Session) -> None:
    # Counted per attempt and address before reading a byte: the cheap guard against upload floods.
    ratelimit.limit(request, "complaint-address", get_settings().complaint_rate_per_address)
    # The account is checked before the body is read: a deactivated (or out-of-term) filer's valid token
    # must not get its photos received, buffered and decoded first (the route's own check comes too late).
    await run_in_threadpool(load_filer, session, claims)


async def _json_body_submission(
    request: Request, claims: FilerClaims, key: IdempotencyKeyHeader, session: SessionDep
) -> Submission:
    await _admit(request, claims, session)
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"application/json":
        # One media type per operation (a generated client cannot type two): the form has its own path.
        raise AppError(
            415,
            "unsupported_media_type",
            f"此地址只接受 application/json；网页表单（multipart/form-data）请提交到 {FORM_PATH}",
            f"this path takes application/json only; post the multipart/form-data form to {FORM_PATH}",
            {"accepted": ["application/json"], "form_path": FORM_PATH},
        )
    return await _json_submission(request)


async def _form_submission(
    request: Request, claims: FilerClaims, key: IdempotencyKeyHeader, session: SessionDep
) -> Submission:
    await _admit(request, claims, session)
    raw_json, photo_bytes = await _read_form(request)
    raw, data = _parse_json(raw_json)
    kinds = data.photo_kinds or [PhotoKind.other] * len(photo_bytes)
    if len(kinds) != len(photo_bytes):
        raise AppError(
            422,
            "photo_kinds_mismatch",
            "photo_kinds 的数量须与照片数量一致",
            "photo_kinds must list one kind per photo",
            {"photos": len(photo_bytes), "photo_kinds": len(kinds)},
        )
    photos = []
    for index, (data_bytes, kind) in enumerate(zip(photo_bytes, kinds, strict=True)):
        checked = await run_in_threadpool(validate_photo, index, data_bytes)
        photos.append(
            IncomingPhoto(
                data=checked.data,
                sha256=checked.sha256,
                format=checked.format,
                width=checked.width,
                height=checked.height,
                kind=kind,
            )
        )
    return Submission(
        data=data, photos=tuple(photos), request_hash=request_hash(raw, [p.sha256 for p in photos])
    )


async def _json_submission(request: Request) -> Submission:
    """The app's form: a JSON body naming photos uploaded ahead (resolved later, with the database)."""
    limit = get_settings().complaint_json_max_bytes
    raw_json = b""
    try:
        async for chunk in request.stream():
            raw_json += chunk
            if len(raw_json) > limit:
                raise _too_large("complaint_too_large", "投诉内容过大", "the complaint is too large", limit)
    except ClientDisconnect:
        # The link dropped mid-body; the app retries with the same key.
        raise AppError(400, "client_disconnected", "请求中断", "the request was interrupted") from None
    raw, data = _parse_json(raw_json, ComplaintJsonSubmission, ())
    assert isinstance(data, ComplaintJsonSubmission)
    if not data.photo_uploads and data.photo_kinds:
        raise AppError(
            422,
            "photo_kinds_mismatch",
            "photo_kinds 的数量须与照片数量一致",
            "photo_kinds must list one kind per photo",
            {"photos": 0, "photo_kinds": len(data.photo_kinds)},
        )
    # Without uploads the hash is final now; with them it is made once their SHA-256s are read.
    return Submission(
        data=data,
        photos=(),
        request_hash="" if data.photo_uploads else request_hash(_without_uploads(raw), []),
        upload_ids=tuple(data.photo_uploads),
        raw=raw,
    )


def _without_uploads(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key != "photo_uploads"}


#: ``POST /api/v1/complaints``: the app's JSON body.
JsonSubmission = Annotated[Submission, Depends(_json_body_submission)]
#: ``POST /api/v1/complaint-form``: the web page's multipart form.
FormSubmission = Annotated[Submission, Depends(_form_submission)]


def load_filer(session: Session, claims: AccessClaims) -> Account:
    """The filing account behind verified claims: active, in term, and still a filer role."""
    account = session.get(Account, claims.account_id)
    if account is None or not account.is_active or not term_is_current(account, bureau_date()):
        raise unauthorized("invalid_token", "账号不可用", "account disabled")
    if account.role not in FILER_ROLES:
        raise forbidden(
            "仅消费者和计量诚信监督员可提交投诉", "only consumers and supervisors file complaints"
        )
    return account


def staff_scope_of(session: Session, user: Account) -> Scope | None:
    """A staff member's or admin's scope, or None for everyone else."""
    if user.role == Role.admin:
        return Scope(user, "/")
    if user.role in BUREAU_READERS and user.jurisdiction_code:
        jurisdiction = session.get(Jurisdiction, user.jurisdiction_code)
        if jurisdiction is not None:
            return Scope(user, jurisdiction.path)
    return None
