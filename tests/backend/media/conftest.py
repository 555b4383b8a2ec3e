"""Shared fixtures for the media tests; image generators live in tests/fixtures/media_images.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
if str(_FIXTURES) not in sys.path:
    sys.path.insert(0, str(_FIXTURES))

from media_images import photo_like  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A 640x480 photo-like RGB image."""
    return photo_like(640, 480, seed=7)


@pytest.fixture(scope="session")
def other_photo() -> Image.Image:
    """A different 640x480 photo-like RGB image."""
    return photo_like(640, 480, seed=99)
