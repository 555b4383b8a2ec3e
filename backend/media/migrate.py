"""``gongping media migrate``: copy every object of one media store to another (a local directory to an
S3-compatible bucket), resumable and verified by SHA-256.

* **Verified.** Each object's SHA-256 is computed from the source; a content key (``…/<sha256>.ext``, which
  every key we write is) must match it, or the source is reported as corrupted and not copied. After the copy
  the object is read back from the target and hashed: only a matching digest counts as copied.
* **Resumable.** An object already in the target with the same SHA-256 (read back and hashed, so a damaged or
  half-written copy is never trusted) is skipped; one with other bytes is copied again. A run stopped at any
  point (Ctrl-C, a crash, an outage) is simply run again. Writes are atomic in both stores, so an interruption
  never leaves a partial object behind.
* An outage of either store stops the run (the rest would fail the same way); the summary says so.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from backend.media.storage import MediaNotFound, MediaStorage, MediaUnavailable

#: The last segment of a content key: the SHA-256 of the bytes, then an optional extension.
_CONTENT_NAME: Final = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.[A-Za-z0-9]{1,10})?$")
_READ_CHUNK: Final = 1024 * 1024


class Outcome(StrEnum):
    """What happened to one object."""

    copied = "copied"
    #: Already in the target with the same SHA-256.
    present = "present"
    #: In the target with other bytes (damaged or stale): copied again and verified.
    repaired = "repaired"
    failed = "failed"


@dataclass
class MigrationReport:
    """Counts and failures of one run."""

    copied: int = 0
    present: int = 0
    repaired: int = 0
    bytes_copied: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Set when a store became unavailable and the run stopped early.
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every object is in the target, verified."""
        return not self.failures and self.stopped is None


def expected_sha256(key: str) -> str | None:
    """The SHA-256 a content key names, or None for a key that names none."""
    match = _CONTENT_NAME.search(key)
    return match.group(1) if match else None


def stored_sha256(storage: MediaStorage, key: str) -> str | None:
    """The SHA-256 of the object under ``key`` as the store returns it now (streamed), or None if missing."""
    digest = hashlib.sha256()
    try:
        with storage.open_stream(key) as stream:
            while chunk := stream.read(_READ_CHUNK):
                digest.update(chunk)
    except MediaNotFound:
        return None
    return digest.hexdigest()


def copy_one(source: MediaStorage, target: MediaStorage, key: str) -> tuple[Outcome, int, str]:
    """Copy one object if needed; returns (outcome, bytes written, why it failed or '')."""
    try:
        data = source.get(key)
    except MediaNotFound:
        return Outcome.failed, 0, "gone from the source while migrating"
    digest = hashlib.sha256(data).hexdigest()
    expected = expected_sha256(key)
    if expected is not None and expected != digest:
        return Outcome.failed, 0, f"source corrupted: SHA-256 {digest[:12]}… does not match its key"
    before = stored_sha256(target, key)
    if before == digest:
        return Outcome.present, 0, ""
    target.put(key, data)
    after = stored_sha256(target, key)
    if after != digest:
        return (
            Outcome.failed,
            len(data),
            f"verification failed: the target returned SHA-256 {str(after)[:12]}…",
        )
    return (Outcome.repaired if before is not None else Outcome.copied), len(data), ""


def migrate(
    source: MediaStorage,
    target: MediaStorage,
    *,
    jobs: int = 4,
    on_object: Callable[[str, Outcome], None] | None = None,
) -> MigrationReport:
    """Copy every object of ``source`` to ``target`` with ``jobs`` in flight; ``on_object`` hears each result.

    An exception from ``on_object`` (Ctrl-C in the command) stops the run: objects in flight finish (each
    write is atomic anyway) and the exception propagates; run again to resume.
    """
    report = MigrationReport()
    lock = threading.Lock()
    keys = iter(source.keys())

    def record(key: str, future: Future[tuple[Outcome, int, str]]) -> None:
        try:
            outcome, written, why = future.result()
        except MediaUnavailable as exc:
            outcome, written, why = Outcome.failed, 0, f"store unavailable: {exc}"
            report.stopped = why
        except (OSError, ValueError) as exc:
            outcome, written, why = Outcome.failed, 0, f"{type(exc).__name__}: {exc}"
        with lock:
            report.bytes_copied += written
            if outcome is Outcome.failed:
                report.failures.append((key, why))
            elif outcome is Outcome.present:
                report.present += 1
            elif outcome is Outcome.repaired:
                report.repaired += 1
            else:
                report.copied += 1
        if on_object is not None:
            on_object(key, outcome)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="media-migrate") as pool:
        pending: dict[Future[tuple[Outcome, int, str]], str] = {}
        try:
            while True:
                while len(pending) < jobs * 2 and report.stopped is None:
                    key = next(keys, None)
                    if key is None:
                        break
                    pending[pool.submit(copy_one, source, target, key)] = key
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    record(pending.pop(future), future)
        finally:
            for future in pending:
                future.cancel()
    return report
