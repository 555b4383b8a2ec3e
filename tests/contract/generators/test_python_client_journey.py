"""An app's journey through the Python client that openapi-python-client generates from openapi/openapi.json,
against uvicorn: register the device, sign in, register for push, file a complaint with a photo (multipart),
poll its timeline, read the inbox and a stall's public profile. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import io
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlmodel import Session

from backend.auth.models import Role
from backend.main import create_app
from backend.qr import service as qr_service
from tests.factories import COUNTY_A, complaint_json, make_account, make_instrument, make_operator, make_stall
from tests.fixtures.media_images import jpeg, photo_like

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.generators, pytest.mark.slow]


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package ``gongping_client``, importable."""
    out = tmp_path_factory.mktemp("python-client")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(ROOT / "openapi" / "openapi.json"),
            "--config",
            str(HERE / "openapi-python-client.yaml"),
            "--output-path",
            str(out / "gongping_client"),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("gongping_client")
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == "gongping_client" or n.startswith("gongping_client.")]:
            del sys.modules[name]


@pytest.fixture
def live_server(committed_session: Session) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


def test_the_app_journey_through_the_generated_client(
    client_package: Any, live_server: str, committed_session: Session
) -> None:
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    market = make_operator(committed_session, staff, name="客户端测试农贸市场")
    stall = make_stall(committed_session, market, number="C3", name="阿芳蔬菜", holder_name="王芳")
    make_instrument(committed_session, market, stall=stall, verified_on=date.today() - timedelta(days=20))
    committed_session.commit()
    stall_token = qr_service.code_of(stall).token

    api = importlib.import_module("gongping_client.api.me")
    public = importlib.import_module("gongping_client.api.public")
    models = importlib.import_module("gongping_client.models")
    types = importlib.import_module("gongping_client.types")
    anonymous = client_package.Client(base_url=live_server, raise_on_unexpected_status=True)

    # First start: an anonymous device credential, then a sign-in with it.
    registered = importlib.import_module("gongping_client.api.me.auth_device_register").sync_detailed(
        client=anonymous, body=models.DeviceRegistration.from_dict({"locale": "en"})
    )
    assert registered.status_code == 201, registered.content
    credential = registered.parsed
    signed_in = importlib.import_module("gongping_client.api.me.auth_token_create").sync_detailed(
        client=anonymous,
        body=models.AuthTokenCreateForm.from_dict(
            {"username": credential.device_id, "password": credential.device_secret}
        ),
    )
    assert signed_in.status_code == 200, signed_in.content
    me = client_package.AuthenticatedClient(
        base_url=live_server, token=signed_in.parsed.access_token, raise_on_unexpected_status=True
    )

    # Push: the FCM token of this installation.
    device = importlib.import_module(f"{api.__name__}.devices_create").sync_detailed(
        client=me,
        body=models.DeviceCreate.from_dict(
            {"token": f"fcm_{uuid.uuid4().hex}", "platform": "android", "locale": "en"}
        ),
    )
    assert device.status_code in (200, 201), device.content

    # A complaint about the stall with a photo, as multipart with its JSON part typed.
    submission = models.ComplaintSubmission.from_dict(
        complaint_json(qr_token=stall_token, photo_kinds=["receipt"])
    )
    photo = types.File(
        payload=io.BytesIO(jpeg(photo_like(64, 48))), file_name="receipt.jpg", mime_type="image/jpeg"
    )
    filed = importlib.import_module(f"{api.__name__}.complaints_create").sync_detailed(
        client=me,
        body=models.ComplaintsCreateBody(complaint=submission, photos=[photo]),
        idempotency_key=f"journey-{uuid.uuid4()}",
    )
    assert filed.status_code == 201, filed.content
    complaint_id = filed.parsed.id

    # Poll the timeline, read the inbox, read the stall's public profile.
    read = importlib.import_module(f"{api.__name__}.complaints_get").sync_detailed(
        client=me, complaint_id=complaint_id
    )
    assert read.status_code == 200, read.content
    assert read.parsed.id == complaint_id and len(read.parsed.timeline) >= 1
    inbox = importlib.import_module(f"{api.__name__}.me_notifications_list").sync_detailed(client=me)
    assert inbox.status_code == 200, inbox.content
    assert isinstance(inbox.parsed, models.NotificationPage)
    profile = importlib.import_module(f"{public.__name__}.public_qr_get").sync_detailed(
        client=anonymous, token=stall_token
    )
    assert profile.status_code == 200, profile.content
    assert profile.parsed.to_dict()["operator"]["name"] == "客户端测试农贸市场"

    # An error comes back typed: the one error shape, with its code.
    missing = importlib.import_module(f"{api.__name__}.complaints_get").sync_detailed(
        client=me, complaint_id=complaint_id + 10_000
    )
    assert missing.status_code == 404
    assert missing.parsed.error.code == "not_found"
