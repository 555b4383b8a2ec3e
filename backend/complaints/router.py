"""Complaint endpoints: submission from the phone, the filer's own view, similar counts, staff reads, photos."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend import audit, ratelimit
from backend.auth.dependencies import BearerClaims, CurrentUser, StaffScope
from backend.auth.security import AccessClaims
from backend.common.etag import not_modified, tag
from backend.common.schemas import Latitude, Longitude, Page, PageLimit, PageOffset
from backend.complaints import polling, service
from backend.complaints.dependencies import (
    FORM_PATH,
    IDEMPOTENCY_KEY_PARAMETER,
    FilerClaims,
    FormSubmission,
    IdempotencyKeyHeader,
    JsonSubmission,
    load_filer,
    staff_scope_of,
)
from backend.complaints.models import Complaint, ComplaintCategory, ComplaintPhoto, PhotoStatus
from backend.complaints.schemas import (
    MAX_PHOTOS,
    ComplaintCreated,
    ComplaintRead,
    ComplaintStaffRead,
    ComplaintSummary,
    CoordSystemIn,
    SimilarCounts,
)
from backend.complaints.service import Submission
from backend.config import get_settings
from backend.db import SessionDep, read_only
from backend.errors import AppError, Responses, error_responses, not_found
from backend.i18n import request_locale
from backend.media.factory import media_storage
from backend.media.processing import ImageFormat
from backend.media.storage import MediaNotFound
from backend.uploads import service as uploads_service
from geo import CoordSystem, to_wgs84

router = APIRouter(prefix="/api/v1", tags=["complaints"])


_SHARED_DESCRIPTION = """
The header **`Idempotency-Key`** is required. The same key with the same body (the canonical JSON and the photos'
SHA-256s) answers with the same complaint — 201 the first time, 200 after; the same key with a different body is
409 `idempotency_conflict`. Keys are scoped to the account and kept at least 7 days, and shared by both forms of
submission (`complaints_create` and `complaint_form_create`).

Supervisors must give `finding` and the operator (QR token or ids); consumers must give a location or the
operator. The geotag is stored as sent and converted to WGS-84. Photos are processed after the answer; their
status moves from `pending` to `processed` or `rejected`. Routing to the bureau with jurisdiction follows. The
answer's `case_no` (`TS…` for a complaint, `JB…` for a supervisor's report) is the number to quote to the bureau.
"""

_SUBMIT_DESCRIPTION = f"""
File a complaint (consumer device or account) or a patrol report (supervisor) from the app, as
`application/json` (`ComplaintJsonSubmission`): the submission with **`photo_uploads`**, the ids
`POST /api/v1/uploads` answered, in photo order (`photo_kinds` aligned with them, at most {MAX_PHOTOS}). An id
that is not yours, or has expired, is 404 `upload_not_found` (upload the photo again); an upload already part of
another complaint is 409 `upload_already_attached`. The body's hash uses the photos' SHA-256s, not the ids, so a
retry that had to upload a photo again is still the same submission.

This path takes JSON only: a `multipart/form-data` body is 415 `unsupported_media_type` (its `details.form_path`
names `POST {FORM_PATH}`, where the web page's form goes).
{_SHARED_DESCRIPTION}
Errors: 413 for a body over its limit; 415 for a body that is not JSON; 422 `invalid_json`, `invalid_coordinates`,
`invalid_coord_system`, `forged_qr`, `revoked_qr`, …; 429 with `Retry-After`.
"""

_FORM_DESCRIPTION = f"""
File a complaint or a patrol report with its photos in one request, as `multipart/form-data` (what the QR web
page sends; the app uploads photos ahead and uses `complaints_create` instead):

* part **`complaint`**: the JSON object `ComplaintSubmission`, as a text field or a file part of type
  `application/json`, at most 64 KB by default;
* 0–{MAX_PHOTOS} parts **`photos`**: JPEG, PNG, WebP or HEIC/HEIF images, told apart by their bytes (never by name
  or declared type). **The kind of each photo** (`receipt`, `scale_display`, `goods`, `other`) is given in the JSON
  as `photo_kinds`, a list aligned with the order of the `photos` parts; when it is omitted every photo is `other`.

A submission without photos may also come as `application/x-www-form-urlencoded`; any other body is 415
`unsupported_media_type`.
{_SHARED_DESCRIPTION}
Errors: 413 for a photo, the JSON part or the request over its limit; 415 for a photo that is not an accepted
image (or a body that is not a form); 422 `too_many_photos`, `invalid_json`, `invalid_coordinates`,
`invalid_coord_system`, `forged_qr`, `revoked_qr`, `media_rejected` (truncated, corrupt, decompression bomb), …;
429 with `Retry-After`.
"""

_SUBMIT_OPENAPI: dict[str, Any] = {
    "parameters": [IDEMPOTENCY_KEY_PARAMETER],
    "requestBody": {
        "required": True,
        # The app's form: photos uploaded ahead (POST /api/v1/uploads), named by id.
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ComplaintJsonSubmission"}}},
    },
}

_FORM_OPENAPI: dict[str, Any] = {
    "parameters": [IDEMPOTENCY_KEY_PARAMETER],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["complaint"],
                    "properties": {
                        # A named component (backend/main.py registers it), so generators type the part.
                        "complaint": {"$ref": "#/components/schemas/ComplaintSubmission"},
                        "photos": {
                            "type": "array",
                            "maxItems": MAX_PHOTOS,
                            "items": {"type": "string", "format": "binary"},
                            "description": "photos in the order of photo_kinds",
                        },
                    },
                },
                "encoding": {
                    "complaint": {"contentType": "application/json"},
                    "photos": {"contentType": "image/jpeg, image/png, image/webp, image/heic, image/heif"},
                },
            },
        },
    },
}

_SUBMIT_RESPONSES: Responses = {
    200: {"model": ComplaintCreated, "description": "a retry: the complaint made by the first request"},
    **error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429),
}


@router.post(
    "/complaints",
    response_model=ComplaintCreated,
    status_code=201,
    description=_SUBMIT_DESCRIPTION,
    responses=_SUBMIT_RESPONSES,
    openapi_extra=_SUBMIT_OPENAPI,
)
async def submit_complaint(
    response: Response,
    submission: JsonSubmission,
    key: IdempotencyKeyHeader,
    claims: FilerClaims,
    session: SessionDep,
) -> ComplaintCreated:
    """File a complaint or a patrol report from the app (photos uploaded ahead), safely retried with a key."""
    return await _answer(response, session, claims, key, submission)


@router.post(
    "/complaint-form",
    response_model=ComplaintCreated,
    status_code=201,
    description=_FORM_DESCRIPTION,
    responses=_SUBMIT_RESPONSES,
    openapi_extra=_FORM_OPENAPI,
)
async def submit_complaint_form(
    response: Response,
    submission: FormSubmission,
    key: IdempotencyKeyHeader,
    claims: FilerClaims,
    session: SessionDep,
) -> ComplaintCreated:
    """File a complaint or a patrol report with its photos as a multipart form (the web page)."""
    return await _answer(response, session, claims, key, submission)


async def _answer(
    response: Response, session: Session, claims: AccessClaims, key: str, submission: Submission
) -> ComplaintCreated:
    # All database work runs in one worker-thread hop, and the answer is serialised on the event loop: a sync
    # endpoint would hold its connection (and SQLite's write lock) while queueing for a second thread to
    # serialise the response, and a burst of retries then starves the thread pool until timeouts.
    created, created_now = await run_in_threadpool(_submit, session, claims, key, submission)
    if not created_now:
        response.status_code = 200
    return created


def _submit(
    session: Session, claims: AccessClaims, key: str, submission: Submission
) -> tuple[ComplaintCreated, bool]:
    user = load_filer(session, claims)
    storage = media_storage()
    if submission.upload_ids:
        submission = uploads_service.resolve(session, account=user, submission=submission, storage=storage)
    complaint = service.find_replay(
        session, account_id=user.id or 0, key=key, body_hash=submission.request_hash
    )
    created = False
    if complaint is None:
        uploads_service.check_unattached(submission)
        ratelimit.hit("complaint-account", str(user.id), get_settings().complaint_rate_per_account)
        complaint, created = service.submit(
            session, account=user, key=key, submission=submission, storage=storage
        )
    return service.to_created(session, complaint), created


class SimilarQuery(BaseModel):
    """Either an operator, or a point (in its coordinate system); optionally a category."""

    # Other query parameters (``lang``) belong to the whole API, not to this model.
    model_config = ConfigDict(extra="ignore")
    operator_id: int | None = None
    lon: Longitude | None = None
    lat: Latitude | None = None
    coord_system: CoordSystemIn = CoordSystem.WGS84
    category: ComplaintCategory | None = None


@router.get("/complaints/similar", response_model=SimilarCounts, responses=error_responses(401, 422, 429))
def similar(
    request: Request, session: SessionDep, user: CurrentUser, query: Annotated[SimilarQuery, Query()]
) -> SimilarCounts:
    """How many others reported the same operator, or within 250 m, in the last 7 days (counts only)."""
    ratelimit.limit(request, "complaint-similar", "120/minute")
    point = None
    if query.operator_id is None:
        if query.lon is None or query.lat is None:
            raise AppError(
                422,
                "similar_basis_required",
                "请提供 operator_id，或 lon 与 lat",
                "give operator_id, or lon and lat",
            )
        point = to_wgs84(query.lon, query.lat, query.coord_system)
    return service.similar_counts(
        session, account_id=user.id or 0, operator_id=query.operator_id, point=point, category=query.category
    )


@router.get(
    "/me/complaints",
    response_model=Page[ComplaintSummary],
    tags=["me"],
    responses={304: {"description": "unchanged since the ETag sent"}, **error_responses(401)},
)
@read_only
async def my_complaints(
    request: Request,
    response: Response,
    session: SessionDep,
    claims: BearerClaims,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> Page[ComplaintSummary] | Response:
    """Your complaints, newest first; send the `ETag` back as `If-None-Match` to get 304 when nothing changed."""
    # A poll the app repeats: the account, the validator and the page in one worker-thread hop; the account
    # and the validator in one statement, so an unchanged poll is one round trip.
    return await run_in_threadpool(_my_complaints, request, response, session, claims, limit, offset)


def _my_complaints(
    request: Request, response: Response, session: Session, claims: AccessClaims, limit: int, offset: int
) -> Page[ComplaintSummary] | Response:
    user, etag, total = polling.polled_own_list(session, claims, limit=limit, offset=offset)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    tag(response, etag)
    items = service.list_own(session, user, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/complaints/{complaint_id}",
    response_model=ComplaintRead,
    responses={304: {"description": "unchanged since the ETag sent"}, **error_responses(401, 404)},
)
@read_only
def get_complaint(
    request: Request, response: Response, session: SessionDep, user: CurrentUser, complaint_id: int
) -> ComplaintRead | Response:
    """Your complaint with its status timeline (anyone else's is 404); `If-None-Match` → 304 when unchanged."""
    complaint = service.get_own(session, user, complaint_id)
    locale = request_locale(request)
    etag = polling.timeline_etag(session, complaint, locale)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    tag(response, etag)
    return service.to_read(session, complaint, locale)


_IMAGE: Responses = {200: {"content": {"image/jpeg": {}}, "description": "a metadata-free JPEG"}}


def _photo(session: SessionDep, complaint: Complaint, photo_id: int) -> ComplaintPhoto:
    photo = session.get(ComplaintPhoto, photo_id)
    if photo is None or photo.complaint_id != complaint.id:
        raise not_found("照片", "photo")
    return photo


@router.get(
    "/complaints/{complaint_id}/photos/{photo_id}/{rendition}",
    response_class=Response,
    responses={**_IMAGE, **error_responses(401, 404, 409, codes={503: ["storage_unavailable"]})},
)
def photo_rendition(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    complaint_id: int,
    photo_id: int,
    rendition: Literal["display", "thumbnail"],
) -> Response:
    """A photo's display copy or thumbnail (the filer, or staff in scope, audited); never the original."""
    complaint = session.get(Complaint, complaint_id)
    scope = None
    if complaint is None or complaint.account_id != user.id:
        scope = staff_scope_of(session, user)
        if scope is None:
            raise not_found("投诉", "complaint")
        complaint = service.get_for_staff(session, scope, complaint_id)
    photo = _photo(session, complaint, photo_id)
    if scope is not None:
        # A staff view (Art. 20), logged when the transaction commits: a 409 or 404 below is not logged.
        audit.service.record_read(
            session,
            actor=scope.user,
            action="complaint_photo.read",
            entity_type="complaint_photo",
            entity_id=photo_id,
            after={"rendition": rendition},
            request_id=getattr(request.state, "request_id", None),
        )
    key = photo.display_key if rendition == "display" else photo.thumbnail_key
    if photo.status != PhotoStatus.processed or key is None:
        if photo.status == PhotoStatus.rejected:
            raise AppError(
                409,
                "photo_rejected",
                "该照片未通过处理",
                "this photo was rejected",
                {"reason": photo.reject_reason},
            )
        raise AppError(
            409, "photo_not_ready", "照片正在处理，请稍后再试", "the photo is still being processed"
        )
    try:
        data = media_storage().get(key)
    except MediaNotFound:
        raise not_found("照片", "photo") from None
    return Response(
        content=data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.get(
    "/staff/complaints/{complaint_id}",
    response_model=ComplaintStaffRead,
    tags=["staff"],
    responses=error_responses(401, 403, 404),
)
def staff_get_complaint(
    request: Request, session: SessionDep, scope: StaffScope, complaint_id: int
) -> ComplaintStaffRead:
    """A complaint with the filer's identity, contact, precise location and photo evidence; audited (Art. 20)."""
    complaint = service.get_for_staff(session, scope, complaint_id)
    audit.service.record_read(
        session,
        actor=scope.user,
        action="complaint.read",
        entity_type="complaint",
        entity_id=complaint_id,
        request_id=getattr(request.state, "request_id", None),
    )
    return service.to_staff_read(session, complaint, request_locale(request))


def _chunks(stream: BinaryIO, size: int = 1024 * 1024) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(size):
            yield chunk


@router.get(
    "/staff/complaints/{complaint_id}/photos/{photo_id}/original",
    response_class=StreamingResponse,
    tags=["staff"],
    responses={
        200: {
            # Served with the type of the image the bytes are (sniffed at upload), never a generic one.
            "content": {fmt.mime_type: {} for fmt in ImageFormat},
            "description": "the original bytes as uploaded",
        },
        **error_responses(401, 403, 404, codes={503: ["storage_unavailable"]}),
    },
)
def staff_photo_original(
    request: Request, session: SessionDep, scope: StaffScope, complaint_id: int, photo_id: int
) -> StreamingResponse:
    """The original photo exactly as uploaded (evidence, EXIF included); staff in scope only, audited."""
    complaint = service.get_for_staff(session, scope, complaint_id)
    photo = _photo(session, complaint, photo_id)
    # Logged when the transaction commits: if the file is missing, the 404 rolls back and nothing is logged.
    audit.service.record_read(
        session,
        actor=scope.user,
        action="complaint_photo.read",
        entity_type="complaint_photo",
        entity_id=photo_id,
        after={"rendition": "original", "sha256": photo.original_sha256},
        request_id=getattr(request.state, "request_id", None),
    )
    try:
        stream = media_storage().open_stream(photo.original_key)
    except MediaNotFound:
        raise not_found("照片原件", "original photo") from None
    fmt = ImageFormat(photo.original_format)
    return StreamingResponse(
        _chunks(stream),
        media_type=fmt.mime_type,
        headers={
            "Content-Disposition": f'attachment; filename="complaint-{complaint_id}-photo-{photo_id}.{fmt.value}"',
            "Cache-Control": "no-store",
        },
    )
