"""LocalMediaStorage: the MediaStorage protocol, atomic writes, key validation, content addressing."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from backend.media import (
    LocalMediaStorage,
    MediaNotFound,
    MediaStorage,
    content_key,
    put_content_addressed,
    validate_key,
)


@pytest.fixture
def storage(tmp_path: Path) -> LocalMediaStorage:
    return LocalMediaStorage(tmp_path / "media")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_satisfies_the_protocol(storage: LocalMediaStorage) -> None:
    assert isinstance(storage, MediaStorage)


def test_put_get_exists_stream_delete(storage: LocalMediaStorage) -> None:
    key = "complaints/2024/05/photo-1.jpg"
    assert not storage.exists(key)
    storage.put(key, b"first")
    assert storage.exists(key) and storage.get(key) == b"first"
    storage.put(key, b"second version")  # replaces
    assert storage.get(key) == b"second version"
    with storage.open_stream(key) as stream:
        assert stream.read(6) == b"second" and stream.read() == b" version"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting twice is fine
    with pytest.raises(MediaNotFound):
        storage.get(key)
    with pytest.raises(MediaNotFound):
        storage.open_stream(key)


def test_directory_is_not_an_object(storage: LocalMediaStorage) -> None:
    storage.put("a/b/c.jpg", b"x")
    assert not storage.exists("a/b")
    with pytest.raises(MediaNotFound):
        storage.get("a/b")
    storage.delete("a/b")
    assert storage.get("a/b/c.jpg") == b"x"


def test_writes_leave_no_temporary_files(storage: LocalMediaStorage) -> None:
    for i in range(5):
        storage.put("x/y.bin", os.urandom(1000 + i))
    assert _files(storage.root) == ["x/y.bin"]
    assert (storage.root / "x" / "y.bin").stat().st_mode & 0o777 == 0o640


def test_stored_files_and_folders_are_private_whatever_the_umask(storage: LocalMediaStorage) -> None:
    previous = os.umask(0o000)  # the most permissive umask: modes must not depend on it
    try:
        storage.put("originals/ab/cd/photo.jpg", b"exif with gps")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((storage.root / "originals" / "ab" / "cd" / "photo.jpg").stat().st_mode) in (
        0o600,
        0o640,
    )
    for folder in (
        storage.root,
        storage.root / "originals",
        storage.root / "originals" / "ab",
        storage.root / "originals" / "ab" / "cd",
    ):
        assert stat.S_IMODE(folder.stat().st_mode) in (0o700, 0o750), folder


def test_failed_write_keeps_the_old_object(
    storage: LocalMediaStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put("k.jpg", b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        storage.put("k.jpg", b"new")
    monkeypatch.undo()
    assert storage.get("k.jpg") == b"old"
    assert _files(storage.root) == ["k.jpg"]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "..",
        "../etc/passwd",
        "a/../../b",
        "a/..",
        "./a",
        "a/./b",
        "/etc/passwd",
        "//server/share",
        "a\\..\\b",
        "a\\b",
        "a\x00b",
        "a//b",
        "a/",
        ".hidden",
        "a/.tmp-x.part",
        "C:/windows",
        "a b",
        "照片.jpg",
        "a\nb",
        "x" * 600,
    ],
)
def test_unsafe_keys_are_refused(storage: LocalMediaStorage, key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
    for call in (storage.get, storage.exists, storage.delete, storage.open_stream):
        with pytest.raises(ValueError):
            call(key)
    with pytest.raises(ValueError):
        storage.put(key, b"x")
    assert not (storage.root.parent / "etc").exists()


def test_symlinked_directory_inside_root_cannot_escape(storage: LocalMediaStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir(parents=True, exist_ok=True)
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        storage.put("link/x.jpg", b"x")
    assert list(outside.iterdir()) == []


def test_content_addressing(storage: LocalMediaStorage) -> None:
    data = b"the same photo"
    digest = hashlib.sha256(data).hexdigest()
    key = content_key(data, namespace="originals", extension=".JPG")
    assert key == f"originals/{digest[:2]}/{digest[2:4]}/{digest}.jpg"
    assert content_key(data) == f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    assert put_content_addressed(storage, data, namespace="originals", extension="jpg") == key
    mtime = (storage.root / key).stat().st_mtime_ns
    assert put_content_addressed(storage, data, namespace="originals", extension="jpg") == key
    assert (storage.root / key).stat().st_mtime_ns == mtime  # stored once
    assert storage.get(key) == data
    for bad in ("../x", "j/pg", "toolongextension"):
        with pytest.raises(ValueError):
            content_key(data, extension=bad)
    with pytest.raises(ValueError):
        content_key(data, namespace="../up")
