"""Notification worker tests: the FCM stand-in, the real firebase-admin channel, and a real Celery worker.

The worker is its own subprocess (not the complaint tests' one) because push is configured by environment
at start-up: it gets a service account whose ``token_uri`` and the FCM endpoint both point at the stand-in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from backend.config import ROOT, Settings
from tests.notifications.conftest import (  # noqa: F401 - fixtures shared with the channel tests
    fcm,
    fcm_server,
    push_channel,
    service_account,
    shared_push_channel,
)
from tests.support.fcm_standin import StandinServer
from tests.workers.conftest import WorkerProcess
from workers.celery_app import make_celery


def zone_at_local_hour(low: int, high: int, now: datetime | None = None) -> str:
    """A fixed-offset IANA zone in which the local hour is now within [low, high): tests never hit quiet hours."""
    now = now or datetime.now(UTC)
    for offset in range(-12, 15):
        # POSIX sign: Etc/GMT-8 is UTC+8.
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
        if low <= now.astimezone(ZoneInfo(name)).hour < high:
            return name
    raise AssertionError("no zone found")


@pytest.fixture
def daytime_zone() -> str:
    """A zone where it is now late morning or early afternoon."""
    return zone_at_local_hour(10, 16)


@pytest.fixture(scope="session")
def notifications_worker(
    db_engine: Engine,
    fcm_server: StandinServer,  # noqa: F811
    service_account: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """``celery worker -P solo`` with push configured against the stand-in, on the test database."""
    folder = tmp_path_factory.mktemp("notify-worker")
    broker_url = os.environ.get("GONGPING_TEST_BROKER_URL") or "filesystem://"
    queue = f"gongping-notify-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "GONGPING_BROKER_URL": broker_url,
        "GONGPING_BROKER_DIR": str(folder / "broker"),
        "GONGPING_FIREBASE_CREDENTIALS": str(service_account),
        "GONGPING_FCM_ENDPOINT": fcm_server.base_url,
    }
    log = folder / "worker.log"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app:celery_app",
        "worker",
        "-P",
        "solo",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = make_celery(Settings(broker_url=broker_url, broker_dir=folder / "broker"))
    worker = WorkerProcess(process=process, queue=queue, app=app, log=log)
    try:
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        app.close()
