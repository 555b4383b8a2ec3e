"""Blob storage for complaint media behind a small protocol: a local directory here, an S3-compatible object
store in ``backend/media/s3.py``; ``backend/media/factory.py`` picks one from the settings."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, Protocol, runtime_checkable

from backend.errors import AppError

MAX_KEY_LENGTH: Final = 512
# Segments of ASCII letters, digits, '.', '_' and '-' that do not start with '.', joined by single '/'.
# This rules out '..', '.', hidden names, absolute paths, backslashes, NULs, drive letters and
# empty segments, and leaves room for our own '.tmp-' files next to the stored ones.
_KEY: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_EXTENSION: Final = re.compile(r"[A-Za-z0-9]{1,10}")


#: Seconds a client is told to wait when the store is unavailable (``Retry-After``).
RETRY_AFTER_SECONDS: Final = 30


class MediaNotFound(LookupError):
    """No object is stored under the key."""


class MediaUnavailable(OSError):
    """The store cannot be reached or refused to work right now (outage, timeout, 5xx, throttling, full disk).

    An ``OSError`` on purpose: callers that already treat an I/O error as transient (the photo worker's retry,
    the 503 when an original cannot be stored) treat an object store outage the same way.
    """


def storage_unavailable() -> AppError:
    """The API's answer while the store is unavailable: 503 with ``Retry-After``, in our error shape."""
    return AppError(
        503,
        "storage_unavailable",
        "照片存储暂时不可用，请稍后重试",
        "photo storage temporarily unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``ValueError``."""
    if not isinstance(key, str):
        raise ValueError("storage key must be a str")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key must be 1..{MAX_KEY_LENGTH} characters")
    if "\x00" in key or "\\" in key:
        raise ValueError("storage key must not contain NUL or backslash")
    if key.startswith("/"):
        raise ValueError("storage key must be relative")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError("storage key must not contain empty, '.' or '..' segments")
    if not _KEY.fullmatch(key):
        raise ValueError("storage key may use only A-Z a-z 0-9 . _ - and /; no segment may start with '.'")
    return key


def content_key(data: bytes, *, namespace: str = "sha256", extension: str = "") -> str:
    """Return the content-addressed key ``namespace/ab/cd/<sha256>[.ext]`` for ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    suffix = ""
    if extension:
        extension = extension.removeprefix(".")
        if not _EXTENSION.fullmatch(extension):
            raise ValueError("extension must be 1-10 ASCII letters or digits")
        suffix = f".{extension.lower()}"
    return validate_key(f"{namespace}/{digest[:2]}/{digest[2:4]}/{digest}{suffix}")


@runtime_checkable
class MediaStorage(Protocol):
    """Where media objects live, addressed by validated relative keys."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, replacing any previous object."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object stored under ``key`` or raise ``MediaNotFound``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object under ``key``; removing a missing object is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Return True if an object is stored under ``key``."""
        ...

    def open_stream(self, key: str) -> BinaryIO:
        """Open the object under ``key`` for streaming reads (caller closes) or raise ``MediaNotFound``."""
        ...

    def keys(self) -> Iterator[str]:
        """Every stored key (for migrations and audits of the store; may be long)."""
        ...


def put_content_addressed(
    storage: MediaStorage,
    data: bytes,
    *,
    namespace: str = "sha256",
    extension: str = "",
    look_first: bool = True,
) -> str:
    """Store ``data`` under its content key unless already there, and return the key.

    ``look_first=False`` writes without asking: a content key names exactly these bytes, so writing them again
    changes nothing. Asking first saves uploading a large original a second time; for small renditions the question
    costs more than the answer saves (on an object store, a HEAD round trip per rendition).
    """
    key = content_key(data, namespace=namespace, extension=extension)
    if not look_first or not storage.exists(key):
        storage.put(key, data)
    return key


class LocalMediaStorage:
    """``MediaStorage`` on a local directory; writes go to a temp file, fsync, then rename."""

    # Originals keep their GPS and EXIF (evidence for staff only): owner read-write, the service's group read,
    # nobody else; folders likewise. Set explicitly, so a permissive umask cannot widen them.
    def __init__(self, root: Path, *, file_mode: int = 0o640, dir_mode: int = 0o750) -> None:
        self.root = Path(root).resolve()
        self.file_mode = file_mode
        self.dir_mode = dir_mode

    def __repr__(self) -> str:
        return f"LocalMediaStorage({str(self.root)!r})"

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` and any missing parent up to and including the root, each with ``dir_mode``."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            if current == self.root or current.parent == current:
                break
            current = current.parent
        for folder in reversed(missing):
            if folder == self.root:
                folder.parent.mkdir(parents=True, exist_ok=True)  # above the root: not ours to restrict
            try:
                folder.mkdir(mode=self.dir_mode)
            except FileExistsError:
                continue  # made meanwhile by a concurrent writer, with the same mode
            os.chmod(folder, self.dir_mode)

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # The key syntax already forbids escaping; this also refuses symlinked directories inside root.
        if not path.parent.resolve().is_relative_to(self.root):
            raise ValueError("storage key resolves outside the storage root")
        return path

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, replacing any previous object."""
        path = self._path(key)
        with _local_errors():
            self._put(path, data)

    def _put(self, path: Path, data: bytes) -> None:
        self._make_dirs(path.parent)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, self.file_mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(path.parent)

    def get(self, key: str) -> bytes:
        """Return the object stored under ``key`` or raise ``MediaNotFound``."""
        path = self._path(key)
        with _local_errors():
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError) as exc:
                raise MediaNotFound(key) from exc

    def delete(self, key: str) -> None:
        """Remove the object under ``key``; removing a missing object is not an error."""
        path = self._path(key)
        if path.is_dir():
            return
        with _local_errors():
            path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """Return True if an object is stored under ``key``."""
        return self._path(key).is_file()

    def open_stream(self, key: str) -> BinaryIO:
        """Open the object under ``key`` for streaming reads (caller closes) or raise ``MediaNotFound``."""
        path = self._path(key)
        with _local_errors():
            try:
                return path.open("rb")
            except (FileNotFoundError, IsADirectoryError) as exc:
                raise MediaNotFound(key) from exc

    def keys(self) -> Iterator[str]:
        """Every stored key, in sorted order (our own temporary files and anything not a valid key are skipped)."""
        if not self.root.is_dir():
            return
        with _local_errors():
            for directory, folders, files in os.walk(self.root):
                folders[:] = sorted(f for f in folders if not f.startswith("."))
                base = Path(directory).relative_to(self.root)
                for name in sorted(files):
                    key = (base / name).as_posix()
                    if _KEY.fullmatch(key) and len(key) <= MAX_KEY_LENGTH:
                        yield key


@contextlib.contextmanager
def _local_errors() -> Iterator[None]:
    """Turn the disk's I/O errors (full, read-only, permissions, EIO) into ``MediaUnavailable``."""
    try:
        yield
    except MediaUnavailable:
        raise
    except (FileNotFoundError, IsADirectoryError):
        raise
    except OSError as exc:
        raise MediaUnavailable(f"local media store: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    """Persist a rename by syncing its directory (best effort where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
