"""Read-only routes get a session that reads without write locks or transaction round trips, and refuses writes."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidRequestError
from sqlmodel import col, select

from backend.db import ReadOnlySession, SessionDep, new_read_only_session, read_only
from backend.jurisdictions.models import Jurisdiction


def test_read_only_session_reads_and_refuses_writes(db_engine: Engine) -> None:
    session = new_read_only_session(db_engine)
    try:
        place = session.execute(select(Jurisdiction).limit(1)).scalar_one()
        place.name = "改名"
        with pytest.raises(InvalidRequestError):
            session.flush()
        session.rollback()
        with pytest.raises(InvalidRequestError):
            session.execute(
                update(Jurisdiction).where(col(Jurisdiction.code) == place.code).values(name="改名")
            )
    finally:
        session.close()
    with db_engine.connect() as conn:
        stored = conn.execute(select(col(Jurisdiction.name)).where(col(Jurisdiction.code) == place.code))
        assert stored.scalar_one() != "改名"


def test_read_only_routes_get_a_read_only_session(db_engine: Engine) -> None:
    app = FastAPI()
    kinds: dict[str, str] = {}

    @app.get("/read")
    @read_only
    def reader(session: SessionDep) -> int:
        kinds["read"] = type(session).__name__
        return len(session.execute(select(col(Jurisdiction.code)).limit(3)).all())

    @app.get("/write")
    def writer(session: SessionDep) -> int:
        kinds["write"] = type(session).__name__
        return len(session.execute(select(col(Jurisdiction.code)).limit(3)).all())

    with TestClient(app) as client:
        assert client.get("/read").json() == 3
        assert client.get("/write").json() == 3
    assert kinds == {"read": ReadOnlySession.__name__, "write": "Session"}
