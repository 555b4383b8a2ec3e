"""An app's journey through the Python client that openapi-python-client generates from openapi/openapi.json,
against uvicorn: register the device, sign in, register for push, upload three photos ahead, file a complaint
naming them (and retry it), poll its timeline with If-None-Match, read the inbox in English and a stall's public
profile, and be refused with 426 as an old app. Every call is a generated method with typed arguments: what it
cannot express is a gap in the contract. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.config import get_settings
from backend.main import create_app
from backend.notices.delivery import dispatch_event
from backend.outbox.models import OutboxEvent
from backend.qr import service as qr_service
from tests.factories import COUNTY_A, complaint_json, make_account, make_instrument, make_operator, make_stall
from tests.fixtures.media_images import jpeg, photo_like
from tests.support.live_server import serve

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
    with serve(create_app()) as url:
        yield url


def _photo(payload: bytes) -> Any:
    types = importlib.import_module("gongping_client.types")
    return types.File(payload=io.BytesIO(payload), file_name="photo.jpg", mime_type="image/jpeg")


def _notify(session: Session, complaint_id: int) -> None:
    """What the worker does with the complaint's event: the filer's inbox entry (push stays off here)."""
    session.expire_all()
    event = session.exec(
        select(OutboxEvent).where(col(OutboxEvent.dedupe_key) == f"complaint.created:{complaint_id}")
    ).one()
    dispatch_event(session, event, push_enabled=False)
    session.commit()


def test_the_app_journey_through_the_generated_client(
    client_package: Any, live_server: str, committed_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "app_min_versions", {"android": "1.4.0"})
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    market = make_operator(committed_session, staff, name="客户端测试农贸市场")
    stall = make_stall(committed_session, market, number="C3", name="阿芳蔬菜", holder_name="王芳")
    make_instrument(committed_session, market, stall=stall, verified_on=date.today() - timedelta(days=20))
    committed_session.commit()
    stall_token = qr_service.code_of(stall).token

    me_api = importlib.import_module("gongping_client.api.me").__name__
    public = importlib.import_module("gongping_client.api.public").__name__
    models = importlib.import_module("gongping_client.models")

    def call(module: str, operation: str, **arguments: Any) -> Any:
        return importlib.import_module(f"{module}.{operation}").sync_detailed(**arguments)

    # The app sets its version once, on the client; this one is supported (the minimum is 1.4.0).
    app_headers = {"X-App-Version": "android/1.4.2"}
    anonymous = client_package.Client(
        base_url=live_server, headers=app_headers, raise_on_unexpected_status=True
    )

    # First start: an anonymous device credential, then a sign-in with it. The phone speaks Chinese.
    registered = call(
        me_api,
        "auth_device_register",
        client=anonymous,
        body=models.DeviceRegistration.from_dict({"locale": "zh-CN"}),
    )
    assert registered.status_code == 201, registered.content
    credential = registered.parsed
    signed_in = call(
        me_api,
        "auth_token_create",
        client=anonymous,
        body=models.AuthTokenCreateForm.from_dict(
            {"username": credential.device_id, "password": credential.device_secret}
        ),
    )
    assert signed_in.status_code == 200, signed_in.content
    me = client_package.AuthenticatedClient(
        base_url=live_server,
        token=signed_in.parsed.access_token,
        headers=app_headers,
        raise_on_unexpected_status=True,
    )

    # Push: the FCM token of this installation.
    device = call(
        me_api,
        "devices_create",
        client=me,
        body=models.DeviceCreate.from_dict(
            {"token": f"fcm_{uuid.uuid4().hex}", "platform": "android", "locale": "zh-CN"}
        ),
    )
    assert device.status_code in (200, 201), device.content

    # Three photos uploaded ahead, one request each; the same photo again is the same upload (a retry after a
    # dropped connection re-sends only that photo).
    photos = [jpeg(photo_like(64, 48, seed=seed)) for seed in (1, 2, 3)]
    uploads = []
    for photo in photos:
        uploaded = call(
            me_api, "uploads_create", client=me, body=models.UploadsCreateBody(photo=_photo(photo))
        )
        assert uploaded.status_code == 201, uploaded.content
        uploads.append(uploaded.parsed.id)
    again = call(me_api, "uploads_create", client=me, body=models.UploadsCreateBody(photo=_photo(photos[1])))
    assert again.status_code == 200, again.content
    assert again.parsed.id == uploads[1] and len(set(uploads)) == 3

    # The complaint as JSON naming the uploads, with an Idempotency-Key; the retry with the same key is the
    # same complaint (200, not a second one).
    submission = models.ComplaintJsonSubmission.from_dict(
        complaint_json(
            qr_token=stall_token, photo_uploads=uploads, photo_kinds=["receipt", "scale_display", "goods"]
        )
    )
    key = f"journey-{uuid.uuid4()}"
    filed = call(me_api, "complaints_create", client=me, body=submission, idempotency_key=key)
    assert filed.status_code == 201, filed.content
    complaint_id = filed.parsed.id
    retried = call(me_api, "complaints_create", client=me, body=submission, idempotency_key=key)
    assert retried.status_code == 200, retried.content
    assert retried.parsed.id == complaint_id

    # Poll the timeline: the first read carries an ETag, sending it back is 304 with no body.
    read = call(me_api, "complaints_get", client=me, complaint_id=complaint_id)
    assert read.status_code == 200, read.content
    assert read.parsed.id == complaint_id and len(read.parsed.timeline) >= 1
    assert len(read.parsed.photos) == 3
    etag = read.headers["etag"]
    unchanged = call(me_api, "complaints_get", client=me, complaint_id=complaint_id, if_none_match=etag)
    assert unchanged.status_code == 304, unchanged.content
    assert unchanged.content == b"" and unchanged.parsed is None and unchanged.headers["etag"] == etag

    # The inbox: the acknowledgement the worker writes, in Chinese by default and in English when asked.
    _notify(committed_session, complaint_id)
    inbox = call(me_api, "me_notifications_list", client=me)
    assert inbox.status_code == 200, inbox.content
    assert isinstance(inbox.parsed, models.NotificationPage)
    assert [item.title for item in inbox.parsed.items] == ["投诉已收到"]
    english = call(me_api, "me_notifications_list", client=me.with_headers({"Accept-Language": "en"}))
    assert english.status_code == 200, english.content
    assert [item.title for item in english.parsed.items] == ["Complaint received"]

    # The stall's public profile, as a scanned link opens it in the app.
    profile = call(public, "public_qr_get", client=anonymous, token=stall_token)
    assert profile.status_code == 200, profile.content
    assert profile.parsed.to_dict()["operator"]["name"] == "客户端测试农贸市场"

    # An error comes back typed: the one error shape, with its code.
    missing = call(me_api, "complaints_get", client=me, complaint_id=complaint_id + 10_000)
    assert missing.status_code == 404
    assert missing.parsed.error.code == "not_found"

    # An app below the minimum is refused with 426 in the same shape, saying which version is needed.
    old = me.with_headers({"X-App-Version": "android/1.3.9", "Accept-Language": "en"})
    refused = call(me_api, "me_notifications_list", client=old)
    assert refused.status_code == 426, refused.content
    assert refused.parsed.error.code == "app_version_unsupported"
    assert refused.parsed.error.details["min_version"] == "1.4.0"
