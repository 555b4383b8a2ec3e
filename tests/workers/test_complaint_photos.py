"""Complaint photo processing: renditions, evidence, reuse, rejection, retries, and a real worker end to end."""

from __future__ import annotations

import io
import time
from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.complaints.models import ComplaintPhoto, IdempotencyKey, PhotoStatus
from backend.complaints.photos import process_photo, stale_pending_photos
from backend.db import new_session, session_scope, utcnow
from backend.main import create_app
from backend.media.factory import media_storage
from backend.media.processing import is_metadata_free_jpeg
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from tests.factories import complaint_json, login, make_account, post_complaint
from tests.fixtures.media_images import jpeg, make_exif, photo_like
from tests.workers.conftest import WorkerProcess, photo_statuses
from workers import complaints_tasks
from workers.celery_app import celery_app

EXIF_PHOTO = jpeg(
    photo_like(1200, 900, seed=11), exif=make_exif(orientation=6, latitude=30.2795, longitude=120.1052)
)


def _submit(
    client: TestClient, session: Session, photos: list[bytes], **overrides: Any
) -> list[ComplaintPhoto]:
    headers = login(client, make_account(session, Role.consumer_device))
    resp = post_complaint(client, headers, complaint_json(**overrides), photos)
    assert resp.status_code == 201, resp.text
    return list(
        session.exec(
            select(ComplaintPhoto)
            .where(ComplaintPhoto.complaint_id == resp.json()["id"])
            .order_by(col(ComplaintPhoto.position))
        ).all()
    )


def _run(session: Session, photo: ComplaintPhoto) -> PhotoStatus | None:
    return process_photo(photo.id or 0, unit_of_work=lambda: nullcontext(session))


def test_processing_makes_clean_renditions_and_staff_evidence(client: TestClient, session: Session) -> None:
    [photo] = _submit(client, session, [EXIF_PHOTO])
    assert _run(session, photo) == PhotoStatus.processed
    session.refresh(photo)
    storage = media_storage()
    assert photo.display_key and photo.thumbnail_key and photo.processed_at is not None
    display, thumbnail = storage.get(photo.display_key), storage.get(photo.thumbnail_key)
    assert is_metadata_free_jpeg(display) and is_metadata_free_jpeg(thumbnail)
    with Image.open(io.BytesIO(display)) as im:
        assert im.size == (900, 1200)  # EXIF orientation 6 applied
        assert not im.getexif()
    with Image.open(io.BytesIO(thumbnail)) as im:
        assert max(im.size) <= 512
    assert photo.evidence is not None and photo.evidence["sha256"] == photo.original_sha256
    assert photo.evidence["gps"]["latitude"] == pytest.approx(30.2795, abs=1e-4)
    assert photo.evidence["make"] == "Xiaomi" and photo.evidence["datetime_original"].startswith("2024-05-01")
    assert photo.phash is not None and len(photo.phash) == 16
    assert storage.get(photo.original_key) == EXIF_PHOTO  # the original is kept as uploaded


def test_processing_is_idempotent(client: TestClient, session: Session) -> None:
    [photo] = _submit(client, session, [jpeg(photo_like(320, 240, seed=1))])
    assert _run(session, photo) == PhotoStatus.processed
    session.refresh(photo)
    first = (photo.display_key, photo.processed_at)
    assert _run(session, photo) == PhotoStatus.processed
    session.refresh(photo)
    assert (photo.display_key, photo.processed_at) == first
    assert process_photo(987_654_321, unit_of_work=lambda: nullcontext(session)) is None


def test_reused_photo_is_flagged_across_complaints(client: TestClient, session: Session) -> None:
    picture = photo_like(800, 600, seed=21)
    [first] = _submit(client, session, [jpeg(picture, quality=92)])
    [unrelated] = _submit(client, session, [jpeg(photo_like(800, 600, seed=99))])
    # The same scene re-encoded smaller (what a messaging app does) and the very same bytes again.
    [recompressed, same_bytes] = _submit(
        client, session, [jpeg(picture.resize((400, 300)), quality=60), jpeg(picture, quality=92)]
    )
    for photo in (first, unrelated, recompressed, same_bytes):
        assert _run(session, photo) == PhotoStatus.processed
    session.expire_all()
    assert session.get(ComplaintPhoto, recompressed.id).duplicate_of_photo_ids == [first.id]  # type: ignore[union-attr]
    assert session.get(ComplaintPhoto, same_bytes.id).duplicate_of_photo_ids == [first.id]  # type: ignore[union-attr]
    assert session.get(ComplaintPhoto, unrelated.id).duplicate_of_photo_ids == []  # type: ignore[union-attr]


def test_undecodable_original_is_rejected_and_the_complaint_stays(
    client: TestClient, session: Session
) -> None:
    [photo] = _submit(client, session, [jpeg(photo_like(320, 240, seed=2))])
    media_storage().put(photo.original_key, b"\xff\xd8\xff\xe0" + b"\x00" * 64)  # damaged on disk
    assert _run(session, photo) == PhotoStatus.rejected
    session.refresh(photo)
    assert photo.reject_reason in ("integrity_mismatch", "corrupt", "truncated")
    assert photo.reject_message_zh and photo.reject_message_en and photo.display_key is None


def test_transient_storage_error_leaves_the_photo_pending(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    [photo] = _submit(client, session, [jpeg(photo_like(320, 240, seed=4))])

    class Unavailable:
        def get(self, key: str) -> bytes:
            raise OSError("storage offline")

    with pytest.raises(OSError):
        process_photo(photo.id or 0, unit_of_work=lambda: nullcontext(session), storage=Unavailable())  # type: ignore[arg-type]
    session.refresh(photo)
    assert photo.status == PhotoStatus.pending


def test_stale_pending_photos_are_found(client: TestClient, session: Session) -> None:
    [photo] = _submit(client, session, [jpeg(photo_like(320, 240, seed=6))])
    from datetime import timedelta

    assert photo.id not in stale_pending_photos(session, older_than=timedelta(minutes=30))
    photo.created_at = utcnow() - timedelta(hours=1)
    session.add(photo)
    session.flush()
    assert photo.id in stale_pending_photos(session, older_than=timedelta(minutes=30))


class _FakeTask:
    def __init__(self) -> None:
        self.request = SimpleNamespace(retries=2)
        self.countdown: int | None = None

    def retry(self, exc: BaseException, countdown: int) -> Retry:
        self.countdown = countdown
        return Retry(exc=exc, when=countdown)


def test_task_retries_transient_errors_only(monkeypatch: pytest.MonkeyPatch) -> None:
    task = _FakeTask()

    def offline(photo_id: int) -> PhotoStatus:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(complaints_tasks, "process_photo", offline)
    with pytest.raises(Retry):
        complaints_tasks._process(task, 1)  # type: ignore[arg-type]
    assert task.countdown == 40  # 10 s doubled per earlier retry

    def bug(photo_id: int) -> PhotoStatus:
        raise KeyError("a bug is not retried")

    monkeypatch.setattr(complaints_tasks, "process_photo", bug)
    with pytest.raises(KeyError):
        complaints_tasks._process(_FakeTask(), 1)  # type: ignore[arg-type]


def test_tasks_are_registered_routed_and_scheduled() -> None:
    assert "gongping.complaints.process_photos" in relay.TOPIC_TASKS["complaint.created"]
    celery_app.loader.import_default_modules()
    for name in (
        "gongping.complaints.process_photo",
        "gongping.complaints.process_photos",
        "gongping.complaints.sweep_pending_photos",
        "gongping.complaints.purge_idempotency_keys",
    ):
        assert name in celery_app.tasks
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert {
        "gongping.complaints.purge_idempotency_keys",
        "gongping.complaints.sweep_pending_photos",
    } <= scheduled


def test_purge_task_deletes_old_keys(committed_session: Session) -> None:
    from datetime import timedelta

    device = make_account(committed_session, Role.consumer_device)
    committed_session.flush()
    committed_session.add_all(
        [
            IdempotencyKey(
                account_id=device.id or 0,
                key="old",
                request_hash="0" * 64,
                created_at=utcnow() - timedelta(days=8),
            ),
            IdempotencyKey(account_id=device.id or 0, key="new", request_hash="0" * 64),
        ]
    )
    committed_session.commit()
    assert complaints_tasks.purge_idempotency_keys_task.apply().get() == 1
    with session_scope() as check:
        assert [k.key for k in check.exec(select(IdempotencyKey)).all()] == ["new"]


# ---- a real worker ----------------------------------------------------------------------------------------


def test_photos_flow_from_submission_to_processed_through_a_real_worker(
    committed_session: Session, celery_worker_process: WorkerProcess
) -> None:
    device = make_account(committed_session, Role.consumer_device)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:  # real sessions that commit
        headers = login(client, device)
        good, damaged = EXIF_PHOTO, jpeg(photo_like(640, 480, seed=8))
        resp = post_complaint(
            client, headers, complaint_json(photo_kinds=["scale_display", "receipt"]), [good, damaged]
        )
        assert resp.status_code == 201, resp.text
        complaint_id = resp.json()["id"]
        # Damage the second original after commit: the worker must reject it and still process the first.
        with new_session() as s:
            second = s.exec(
                select(ComplaintPhoto).where(
                    ComplaintPhoto.complaint_id == complaint_id, ComplaintPhoto.position == 1
                )
            ).one()
            media_storage().put(second.original_key, damaged[: len(damaged) // 3])
        with session_scope() as s:
            assert relay.relay_once(s, sender=celery_worker_process.send) >= 1
        deadline = time.monotonic() + 60
        statuses = photo_statuses(complaint_id)
        while PhotoStatus.pending in statuses and time.monotonic() < deadline:
            assert celery_worker_process.process.poll() is None, celery_worker_process.output()
            time.sleep(0.25)
            statuses = photo_statuses(complaint_id)
        assert statuses == [PhotoStatus.processed, PhotoStatus.rejected], celery_worker_process.output()
        body = client.get(f"/api/v1/complaints/{complaint_id}", headers=headers).json()
        # The same event also routes the complaint, in the same worker, so either state may be current.
        assert body["status"] in ("received", "routed") and body["photos"][1]["reject_reason"] in (
            "integrity_mismatch",
            "truncated",
        )
        display = client.get(body["photos"][0]["display_url"], headers=headers)
        assert display.status_code == 200 and is_metadata_free_jpeg(display.content)
    with new_session() as s:
        event = s.exec(select(OutboxEvent).where(OutboxEvent.topic == "complaint.created")).one()
        assert event.published_at is not None
