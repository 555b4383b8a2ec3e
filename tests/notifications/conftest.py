"""Fixtures: one FCM and one JPush stand-in per session, a fake service account, a channel for each."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not a package and the pytest entry point does not put the repo root on sys.path.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from notifications.jpush import JPushChannel  # noqa: E402
from notifications.push import PushChannel, build_push_channel  # noqa: E402
from tests.support.fcm_standin import FcmStandin, StandinServer, write_service_account  # noqa: E402
from tests.support.jpush_standin import APP_KEY, MASTER_SECRET, JPushServer, JPushStandin  # noqa: E402


@pytest.fixture(scope="session")
def fcm_server() -> Iterator[StandinServer]:
    """The stand-in FCM + OAuth2 server, shared by the session."""
    with StandinServer(FcmStandin()) as server:
        yield server


@pytest.fixture
def fcm(fcm_server: StandinServer) -> FcmStandin:
    """The stand-in's state, cleared for this test."""
    fcm_server.app.reset()
    fcm_server.app.retry_after = "7"
    return fcm_server.app


@pytest.fixture(scope="session")
def service_account(fcm_server: StandinServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake service-account JSON whose token_uri is the stand-in."""
    return write_service_account(
        tmp_path_factory.mktemp("fcm") / "service-account.json", fcm_server.token_uri
    )


@pytest.fixture(scope="session")
def shared_push_channel(service_account: Path, fcm_server: StandinServer) -> Iterator[PushChannel]:
    """One channel for the session: building one costs ~0.5 s (the SDK loads CA bundles and the key)."""
    channel = build_push_channel(str(service_account), fcm_server.base_url)
    assert channel is not None
    yield channel
    channel.close()


@pytest.fixture
def push_channel(shared_push_channel: PushChannel, fcm: FcmStandin) -> PushChannel:
    """A push channel on the real firebase-admin SDK, pointed at a freshly reset stand-in."""
    return shared_push_channel


@pytest.fixture(scope="session")
def jpush_server() -> Iterator[JPushServer]:
    """The stand-in JPush v3 push API, shared by the session."""
    with JPushServer(JPushStandin()) as server:
        yield server


@pytest.fixture
def jpush(jpush_server: JPushServer) -> JPushStandin:
    """The JPush stand-in's state, cleared for this test."""
    jpush_server.app.reset()
    return jpush_server.app


@pytest.fixture(scope="session")
def shared_jpush_channel(jpush_server: JPushServer) -> Iterator[JPushChannel]:
    """One JPush channel (the real ``jpush`` SDK) for the session, pointed at the stand-in."""
    channel = JPushChannel(APP_KEY, MASTER_SECRET, base_url=jpush_server.base_url, concurrency=8)
    yield channel
    channel.close()


@pytest.fixture
def jpush_channel(shared_jpush_channel: JPushChannel, jpush: JPushStandin) -> JPushChannel:
    """The JPush channel, with a freshly reset stand-in."""
    return shared_jpush_channel
