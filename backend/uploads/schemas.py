"""API shapes of photos uploaded ahead, and of the JSON complaint that names them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from backend.complaints.schemas import MAX_PHOTOS, ComplaintSubmission

#: An upload id as the server hands it out (32 lowercase hex digits).
UPLOAD_ID_PATTERN = r"^[0-9a-f]{32}$"
UploadId = Annotated[str, Field(pattern=UPLOAD_ID_PATTERN, description="an id from POST /api/v1/uploads")]


class UploadRead(BaseModel):
    """A photo uploaded ahead: name it in a complaint's ``photo_uploads`` before ``expires_at``."""

    id: str
    sha256: str
    bytes: int
    format: str
    width: int
    height: int
    attached: bool = Field(description="already part of a complaint (it cannot be named by another)")
    created_at: datetime
    expires_at: datetime


class ComplaintJsonSubmission(ComplaintSubmission):
    """``POST /api/v1/complaints`` as ``application/json``: the submission, with photos uploaded ahead."""

    #: Upload ids in photo order; ``photo_kinds``, when given, lists one kind per upload.
    photo_uploads: list[UploadId] = Field(default_factory=list, max_length=MAX_PHOTOS)
