"""The staff original-photo download documents the image types it serves (found by the OpenAPI fuzzer)."""

from __future__ import annotations

from backend.main import create_app

PATH = "/api/v1/staff/complaints/{complaint_id}/photos/{photo_id}/original"


def test_original_photo_documents_every_image_type() -> None:
    content = create_app().openapi()["paths"][PATH]["get"]["responses"]["200"]["content"]
    assert set(content) == {"image/jpeg", "image/png", "image/webp", "image/heic"}
