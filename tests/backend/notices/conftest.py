"""The notices' tests: the FCM stand-in, the real firebase-admin channel, and a real Celery worker.

The worker is its own subprocess (not the complaint tests' one) because push is configured by environment
at start-up: it gets a service account whose ``token_uri`` and the FCM endpoint both point at the stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from tests.notifications.conftest import (  # noqa: F401 - fixtures shared with the channel tests
    fcm,
    fcm_server,
    jpush,
    jpush_channel,
    jpush_server,
    push_channel,
    service_account,
    shared_jpush_channel,
    shared_push_channel,
)
from tests.support.fcm_standin import StandinServer
from tests.support.jpush_standin import APP_KEY, MASTER_SECRET, JPushServer
from tests.workers.conftest import WorkerProcess, running_worker


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
    jpush_server: JPushServer,  # noqa: F811
    service_account: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """``celery worker -P solo`` with both push providers configured against their stand-ins, on the test database."""
    push = {
        "GONGPING_FIREBASE_CREDENTIALS": str(service_account),
        "GONGPING_FCM_ENDPOINT": fcm_server.base_url,
        "GONGPING_JPUSH_ENABLED": "true",
        "GONGPING_JPUSH_APP_KEY": APP_KEY,
        "GONGPING_JPUSH_MASTER_SECRET": MASTER_SECRET,
        "GONGPING_JPUSH_BASE_URL": jpush_server.base_url,
    }
    with running_worker(tmp_path_factory.mktemp("notify-worker"), "gongping-notify", push) as worker:
        yield worker
