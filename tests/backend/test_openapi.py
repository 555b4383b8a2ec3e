"""The committed OpenAPI document matches the app."""

from __future__ import annotations

from backend.cli import OPENAPI_PATH, openapi_document


def test_committed_openapi_is_current() -> None:
    assert OPENAPI_PATH.exists(), "run `gongping openapi` and commit openapi/openapi.json"
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_document(), (
        "openapi/openapi.json is stale: run `gongping openapi` (or `make openapi`) and commit it"
    )
