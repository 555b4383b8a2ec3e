"""Running a flow at a chosen instant: the code base reads the time through ``backend.db.utcnow``, which asks
``backend.db.clock``; replacing it moves every caller at once (tokens are checked against the real clock, so
sign in before travelling)."""

from __future__ import annotations

from datetime import datetime

import pytest

from backend import db


def freeze(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    """Stop the clock at ``at`` (aware) for the rest of the test."""
    assert at.tzinfo is not None
    monkeypatch.setattr(db, "clock", lambda: at)
