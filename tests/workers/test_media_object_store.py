"""Complaints on the S3-compatible object store end to end: the API stores originals in the bucket, a real
worker (its own process, configured only by GONGPING_MEDIA_*) makes the renditions there, the API serves them
and the audited original; when the store goes down (its server stopped) a complaint is refused with 503 and
Retry-After and nothing reaches the database, and a photo's processing waits instead of being rejected.

The store is moto's standalone server in its own process (tests/support/s3_standin.py), a dedicated one here
because the test stops it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.complaints.models import Complaint, ComplaintPhoto, IdempotencyKey, PhotoStatus
from backend.complaints.photos import process_photo
from backend.config import get_settings
from backend.db import new_session, session_scope
from backend.main import create_app
from backend.media.factory import media_storage
from backend.media.processing import is_metadata_free_jpeg
from backend.media.s3 import S3MediaStorage
from backend.media.storage import MediaUnavailable
from backend.outbox import relay
from tests.factories import complaint_json, login, make_account, post_complaint
from tests.fixtures.media_images import jpeg, make_exif, photo_like
from tests.support.s3_standin import MotoServer, S3Bucket
from tests.workers.conftest import photo_statuses, running_worker

ORIGINAL = jpeg(photo_like(800, 600, seed=21), exif=make_exif(latitude=30.2795, longitude=120.1052))


@pytest.fixture
def own_store() -> Iterator[S3Bucket]:
    """A moto server of this test's own (the test stops it) and a bucket on it."""
    with MotoServer.spawn() as server:
        yield S3Bucket(server, server.create_bucket(), prefix="gp")


def _count(model: type[Complaint] | type[IdempotencyKey]) -> int:
    with new_session() as check:
        return int(check.exec(select(func.count()).select_from(model)).one())


def test_complaints_live_in_the_bucket_and_an_outage_is_503(
    committed_session: Session,
    own_store: S3Bucket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    own_store.use(monkeypatch)
    assert isinstance(media_storage(), S3MediaStorage)
    device = make_account(committed_session, Role.consumer_device)
    admin = make_account(committed_session, Role.admin)
    committed_session.commit()
    folder = tmp_path_factory.mktemp("s3-worker")
    # The worker shares no media folder with the API: only the bucket (its own, empty GONGPING_MEDIA_DIR).
    env = {**own_store.env, "GONGPING_MEDIA_DIR": str(folder / "no-media-here")}
    with (
        running_worker(folder, "gongping-s3", env) as worker,
        TestClient(create_app(), raise_server_exceptions=False) as client,
    ):
        headers = login(client, device)
        resp = post_complaint(client, headers, complaint_json(photo_kinds=["receipt"]), [ORIGINAL])
        assert resp.status_code == 201, resp.text
        complaint_id = resp.json()["id"]
        with new_session() as s:
            photo = s.exec(select(ComplaintPhoto).where(ComplaintPhoto.complaint_id == complaint_id)).one()
        assert own_store.object_names() == [f"gp/{photo.original_key}"]
        assert not (get_settings().media_dir / photo.original_key).exists()  # not on the API's disk

        with session_scope() as s:
            assert relay.relay_once(s, sender=worker.send) >= 1
        deadline = time.monotonic() + 90
        while photo_statuses(complaint_id) != [PhotoStatus.processed] and time.monotonic() < deadline:
            assert worker.process.poll() is None, worker.output()
            time.sleep(0.25)
        assert photo_statuses(complaint_id) == [PhotoStatus.processed], worker.output()
        assert not (folder / "no-media-here").exists()
        names = own_store.object_names()
        assert {name.split("/")[1] for name in names} == {
            "complaint-originals",
            "complaint-display",
            "complaint-thumbnails",
        }

        base = f"/api/v1/complaints/{complaint_id}/photos/{photo.id}"
        for rendition in ("display", "thumbnail"):
            got = client.get(f"{base}/{rendition}", headers=headers)
            assert got.status_code == 200 and is_metadata_free_jpeg(got.content)
        admin_headers = login(client, admin)
        original_url = f"/api/v1/staff/complaints/{complaint_id}/photos/{photo.id}/original"
        original = client.get(original_url, headers=admin_headers)
        assert original.status_code == 200 and original.content == ORIGINAL
        with new_session() as s:
            reads = s.exec(
                select(AuditEntry).where(
                    AuditEntry.action == "complaint_photo.read", AuditEntry.entity_id == str(photo.id)
                )
            ).all()
        assert [(r.actor_id, (r.after or {})["rendition"]) for r in reads] == [(admin.id, "original")]

        # The store goes down.
        own_store.server.stop()
        complaints, keys = _count(Complaint), _count(IdempotencyKey)
        other = jpeg(photo_like(640, 480, seed=22))
        refused = post_complaint(client, headers, complaint_json(), [other], key="during-outage")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "storage_unavailable"
        assert int(refused.headers["Retry-After"]) > 0
        assert (_count(Complaint), _count(IdempotencyKey)) == (complaints, keys)  # nothing stored
        for url, who in ((f"{base}/display", headers), (original_url, admin_headers)):
            down = client.get(url, headers=who)
            assert down.status_code == 503 and down.headers["Retry-After"], url
            assert down.json()["error"]["code"] == "storage_unavailable"
        # An original read that could not be served is not logged as read.
        with new_session() as s:
            assert (
                len(s.exec(select(AuditEntry).where(AuditEntry.action == "complaint_photo.read")).all()) == 1
            )

        # Back up (an empty store: moto keeps nothing): the same request with the same key now succeeds.
        own_store.server.start()
        own_store.server.create_bucket(own_store.bucket)
        retried = post_complaint(client, headers, complaint_json(), [other], key="during-outage")
        assert retried.status_code == 201, retried.text


def test_processing_waits_for_the_store_instead_of_rejecting(
    client: TestClient, session: Session, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_bucket.use(monkeypatch)
    headers = login(client, make_account(session, Role.consumer_device))
    resp = post_complaint(client, headers, complaint_json(), [jpeg(photo_like(320, 240, seed=23))])
    assert resp.status_code == 201, resp.text
    photo = session.exec(select(ComplaintPhoto).where(ComplaintPhoto.complaint_id == resp.json()["id"])).one()
    down = s3_bucket.storage(endpoint_url="http://127.0.0.1:9")  # nothing listens: connection refused
    # MediaUnavailable, not "original missing": the task retries (an OSError, see complaints_tasks._transient).
    with pytest.raises(MediaUnavailable):
        process_photo(photo.id or 0, unit_of_work=lambda: nullcontext(session), storage=down)
    session.refresh(photo)
    assert photo.status == PhotoStatus.pending
    assert process_photo(photo.id or 0, unit_of_work=lambda: nullcontext(session)) == PhotoStatus.processed
