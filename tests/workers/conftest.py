"""A real Celery worker for the worker tests: a subprocess on the test database and its own queue.

The broker is ``GONGPING_TEST_BROKER_URL`` (Redis in CI) or the filesystem transport in a temporary folder;
the queue name is unique per run, so concurrent test runs sharing a Redis never take each other's tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from backend.complaints.models import ComplaintPhoto, PhotoStatus
from backend.config import ROOT, Settings
from backend.db import new_session
from tests.support.processes import stop_process
from workers.celery_app import make_celery


def photo_statuses(complaint_id: int) -> list[PhotoStatus]:
    """A complaint's photos' states, in order, read while a worker processes them."""
    # A fresh, short transaction per poll: on SQLite an open one would hold the write lock the worker needs.
    with new_session() as check:
        rows = check.exec(
            select(ComplaintPhoto.status)
            .where(ComplaintPhoto.complaint_id == complaint_id)
            .order_by(col(ComplaintPhoto.position))
        ).all()
        check.rollback()
    return list(rows)


@dataclass
class WorkerProcess:
    """The running worker, the queue it consumes, and a relay sender that publishes to that queue."""

    process: subprocess.Popen[bytes]
    queue: str
    app: Celery
    log: Path

    def send(self, name: str, args: list[Any], task_id: str) -> None:
        """A ``backend.outbox.relay`` sender publishing to this worker's queue."""
        self.app.send_task(name, args=args, task_id=task_id, queue=self.queue)

    def output(self) -> str:
        """What the worker has logged so far (for assertion messages)."""
        return self.log.read_text(errors="replace")[-5000:]


@contextmanager
def running_worker(
    folder: Path, queue_prefix: str, env: Mapping[str, str] | None = None
) -> Iterator[WorkerProcess]:
    """``celery worker -P solo`` as a subprocess on its own queue, stopped on exit.

    ``folder`` holds the filesystem broker (when no ``GONGPING_TEST_BROKER_URL``) and the log; ``env`` adds
    settings for the worker (e.g. push credentials) on top of this process's environment.
    """
    broker_url = os.environ.get("GONGPING_TEST_BROKER_URL") or "filesystem://"
    queue = f"{queue_prefix}-{uuid.uuid4().hex[:10]}"
    worker_env = {
        **os.environ,
        "GONGPING_BROKER_URL": broker_url,
        "GONGPING_BROKER_DIR": str(folder / "broker"),
        **(env or {}),
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
        process = subprocess.Popen(args, cwd=ROOT, env=worker_env, stdout=out, stderr=subprocess.STDOUT)
    app = make_celery(Settings(broker_url=broker_url, broker_dir=folder / "broker"))
    try:
        yield WorkerProcess(process=process, queue=queue, app=app, log=log)
    finally:
        stop_process(process)
        app.close()


@pytest.fixture(scope="session")
def celery_worker_process(
    db_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """``celery worker -P solo`` as a subprocess, sharing the test database and media folder."""
    with running_worker(tmp_path_factory.mktemp("celery"), "gongping-test") as worker:
        yield worker
