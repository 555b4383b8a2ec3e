"""``POST /api/v1/uploads``: one photo ahead of its complaint (the app's flow on a bad network)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from backend import ratelimit
from backend.auth.security import AccessClaims
from backend.complaints.dependencies import FilerClaims, load_filer, validate_photo
from backend.complaints.service import IncomingPhoto
from backend.config import get_settings
from backend.db import SessionDep
from backend.errors import AppError, error_responses
from backend.media.factory import media_storage
from backend.uploads import service
from backend.uploads.models import PhotoUpload
from backend.uploads.schemas import UploadRead

router = APIRouter(prefix="/api/v1", tags=["complaints"])

_UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["photo"],
                    "properties": {"photo": {"type": "string", "format": "binary"}},
                },
                "encoding": {
                    "photo": {"contentType": "image/jpeg, image/png, image/webp, image/heic, image/heif"}
                },
            }
        },
    }
}


def _disconnected() -> AppError:
    return AppError(400, "client_disconnected", "上传中断", "the upload was interrupted")


def _read_error(zh: str, en: str, status: int = 422, code: str = "photo_part_required") -> AppError:
    return AppError(status, code, zh, en)


async def _read_photo(request: Request) -> bytes:
    """The one ``photo`` part, within the photo size limit."""
    limit = get_settings().complaint_photo_max_bytes
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise AppError(
            415,
            "unsupported_media_type",
            "照片须以 multipart/form-data 上传",
            "upload the photo as multipart/form-data",
        )
    try:
        form = await request.form(max_files=2, max_fields=1, max_part_size=1024)
    except ClientDisconnect:
        # The link dropped mid-photo (the app sends it again): nothing to answer, nothing to log as an error.
        raise _disconnected() from None
    except StarletteHTTPException as exc:
        raise AppError(
            400, "invalid_multipart", "请求格式无效", "malformed multipart body", {"reason": str(exc.detail)}
        ) from None
    try:
        parts = form.getlist("photo")
        if len(parts) != 1 or set(form) != {"photo"} or not isinstance(parts[0], UploadFile):
            raise _read_error("须有且仅有一个 photo 文件部分", "exactly one file part named photo is needed")
        data = await parts[0].read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise AppError(
            413,
            "media_too_large",
            f"照片过大，单张不能超过 {limit // 1_048_576} MB",
            f"the photo is too large; the limit is {limit // 1_048_576} MB",
            {"limit_bytes": limit, "reason": "too_many_bytes"},
        )
    return data


def _to_read(upload: PhotoUpload) -> UploadRead:
    return UploadRead(
        id=upload.id,
        sha256=upload.original_sha256,
        bytes=upload.original_bytes,
        format=upload.original_format,
        width=upload.width,
        height=upload.height,
        attached=upload.complaint_id is not None,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
    )


@router.post(
    "/uploads",
    response_model=UploadRead,
    status_code=201,
    responses={
        200: {
            "model": UploadRead,
            "description": "this account already uploaded these bytes: the same upload",
        },
        **error_responses(400, 401, 403, 413, 415, 422, 429),
    },
    openapi_extra=_UPLOAD_OPENAPI,
)
async def upload_photo(
    request: Request, response: Response, claims: FilerClaims, session: SessionDep
) -> UploadRead:
    """Upload one photo ahead of its complaint; the same photo again answers with the same upload id.

    Checked exactly as a complaint's photos (JPEG, PNG, WebP, HEIC/HEIF by their bytes; size, pixels, full
    decode). Name the id in the complaint's `photo_uploads` within `expires_at`; after that it is deleted.
    """
    ratelimit.limit(request, "upload-address", get_settings().upload_rate_per_account)
    data = await _read_photo(request)
    photo = await run_in_threadpool(validate_photo, 0, data)
    upload, created = await run_in_threadpool(_store, session, claims, photo)
    if not created:
        response.status_code = 200
    return upload


def _store(session: Session, claims: AccessClaims, photo: IncomingPhoto) -> tuple[UploadRead, bool]:
    user = load_filer(session, claims)
    upload, created = service.create_upload(session, account=user, photo=photo, storage=media_storage())
    if created:
        ratelimit.hit("upload-account", str(user.id), get_settings().upload_rate_per_account)
    return _to_read(upload), created
