"""QR endpoints: the public profile behind a scan, and staff printing and reprinting codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from backend.auth.dependencies import StaffScope
from backend.db import SessionDep, read_only
from backend.errors import Responses, error_responses
from backend.i18n import request_locale
from backend.public.router import storable
from backend.public.service import fresh_until
from backend.qr import service
from backend.qr.schemas import QRCodeRead, QRKind, QRProfilePublic

router = APIRouter(prefix="/api/v1", tags=["qr"])

_REVOKED: Responses = error_responses(410, codes={410: ["revoked_qr"]})
_REVOKED[410]["description"] = "revoked_qr: a genuine code that was reprinted or retired"
_FORGED: Responses = error_responses(404, codes={404: ["forged_qr"]})
_FORGED[404]["description"] = "forged_qr: a code we did not sign"
# Tokens are at most 106 characters; anything longer is refused before any work.
Token = Annotated[str, Path(min_length=1, max_length=200)]


@router.get(
    "/public/qr/{token}", response_model=QRProfilePublic, tags=["public"], responses={**_FORGED, **_REVOKED}
)
@read_only
def scan(request: Request, response: Response, session: SessionDep, token: Token) -> QRProfilePublic:
    """The public profile behind a scanned code, or `forged_qr` (404) / `revoked_qr` (410)."""
    target = service.resolve(session, token, forged_status=404, revoked_status=410)
    # The profile is public and changes slowly; a minute of caching absorbs scan peaks at the edge.
    response.headers["Cache-Control"] = "public, max-age=60"
    # Type, sector and class names follow the caller's language.
    response.headers["Vary"] = "Accept-Language, Accept-Encoding"
    profile = service.public_profile(session, target, request_locale(request))
    storable(request, (target.operator.id or 0,), fresh_until(profile))
    return profile


@router.get("/qr/{kind}/{subject_id}", response_model=QRCodeRead, responses=error_responses(401, 403, 404))
def current_code(session: SessionDep, scope: StaffScope, kind: QRKind, subject_id: int) -> QRCodeRead:
    """The current code of an operator, stall or instrument in your jurisdiction, for printing."""
    return service.code_of(service.subject_in_scope(session, scope, kind, subject_id))


@router.post(
    "/qr/{kind}/{subject_id}/reprint", response_model=QRCodeRead, responses=error_responses(401, 403, 404)
)
def reprint_code(session: SessionDep, scope: StaffScope, kind: QRKind, subject_id: int) -> QRCodeRead:
    """Revoke the printed code (a lost or copied sticker) and issue the next one; audited."""
    subject = service.subject_in_scope(session, scope, kind, subject_id)
    return service.reprint(session, subject=subject, actor=scope.user)
