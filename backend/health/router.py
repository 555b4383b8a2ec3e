"""Liveness and readiness: the database and the broker."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend.config import get_settings
from backend.db import get_engine

router = APIRouter(tags=["health"])


class ComponentHealth(BaseModel):
    """One dependency's state."""

    status: Literal["ok", "down"]
    latency_ms: float | None = None
    detail: str | None = None


class Health(BaseModel):
    """The service's state."""

    status: Literal["ok", "degraded", "down"]
    database: ComponentHealth
    broker: ComponentHealth


def check_database() -> ComponentHealth:
    start = time.perf_counter()
    try:
        # A raw DBAPI round trip: no transaction, so it never queues behind a writer's lock.
        raw = get_engine().raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()
    except Exception as exc:
        return ComponentHealth(status="down", detail=type(exc).__name__)
    return ComponentHealth(status="ok", latency_ms=round((time.perf_counter() - start) * 1000, 2))


def check_broker() -> ComponentHealth:
    from kombu.connection import Connection

    settings = get_settings()
    start = time.perf_counter()
    options: dict[str, Any] = {}
    if settings.uses_embedded_broker:
        folder = str(settings.broker_dir / "queue")
        options = {"data_folder_in": folder, "data_folder_out": folder}
    try:
        with Connection(settings.broker_url, transport_options=options, connect_timeout=2) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return ComponentHealth(status="down", detail=type(exc).__name__)
    return ComponentHealth(status="ok", latency_ms=round((time.perf_counter() - start) * 1000, 2))


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz() -> JSONResponse:
    """The state of the database and the broker; 503 when the database is down."""
    database, broker = check_database(), check_broker()
    if database.status == "down":
        overall: Literal["ok", "degraded", "down"] = "down"
    elif broker.status == "down":
        # Complaints are still accepted into the outbox while the broker is down.
        overall = "degraded"
    else:
        overall = "ok"
    body = Health(status=overall, database=database, broker=broker)
    status = 503 if overall == "down" else 200
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)
