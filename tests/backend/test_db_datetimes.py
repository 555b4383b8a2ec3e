"""Timezone-aware columns read back aware in UTC on both databases (the fuzzer found naive ones on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account, Role
from tests.factories import login, make_account


def test_aware_values_are_stored_in_utc_and_read_back_aware(session: Session) -> None:
    account = make_account(session, Role.admin)
    shanghai = timezone(timedelta(hours=8))
    account.created_at = datetime(2026, 5, 1, 10, 20, 30, tzinfo=shanghai)
    session.add(account)
    session.commit()
    session.expire_all()
    read = session.get(Account, account.id)
    assert read is not None
    assert read.created_at.tzinfo is not None
    assert read.created_at == datetime(2026, 5, 1, 2, 20, 30, tzinfo=UTC)


def test_responses_carry_an_offset(client: TestClient, session: Session) -> None:
    account = make_account(session, Role.admin)
    session.commit()
    created_at = client.get("/api/v1/me", headers=login(client, account)).json()["created_at"]
    # RFC 3339 date-time: an offset is required.
    assert datetime.fromisoformat(created_at).utcoffset() == timedelta(0), created_at
