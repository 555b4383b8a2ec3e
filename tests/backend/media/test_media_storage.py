"""The MediaStorage contract, run against both stores: the local directory and the S3-compatible object store
(moto's standalone server over HTTP, tests/support/s3_standin.py). Then what only one of them has: the local
directory's file modes and temp files, the object store's private objects, Content-MD5 and error mapping."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from backend.config import LocalMediaLocation, S3MediaLocation, parse_media_url
from backend.media import (
    LocalMediaStorage,
    MediaNotFound,
    MediaStorage,
    content_key,
    put_content_addressed,
    validate_key,
)
from backend.media.s3 import S3MediaStorage
from backend.media.storage import MediaUnavailable
from tests.support.s3_standin import S3Bucket, free_port


@dataclass
class Store:
    """A store under test and how to take it down."""

    storage: MediaStorage
    #: Returns the same store as it is during an outage (its disk gone, its server unreachable).
    broken: Callable[[], MediaStorage]


def _broken_local(root: Path) -> Callable[[], MediaStorage]:
    def broken() -> MediaStorage:
        # A disk that went away: the root is now a plain file, so every path below it fails with ENOTDIR.
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_bytes(b"not a directory")
        return LocalMediaStorage(root)

    return broken


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return Store(LocalMediaStorage(tmp_path / "media"), _broken_local(tmp_path / "gone"))
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    # Nothing listens on the port: connection refused, as when the store's server is down.
    return Store(bucket.storage(), lambda: bucket.storage(endpoint_url=f"http://127.0.0.1:{free_port()}"))


def test_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store.storage, MediaStorage)


def test_put_get_exists_stream_delete(store: Store) -> None:
    storage = store.storage
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


def test_large_objects_stream_in_pieces(store: Store) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    store.storage.put("big/object.bin", data)
    pieces = []
    with store.storage.open_stream("big/object.bin") as stream:
        while piece := stream.read(1024 * 1024):
            pieces.append(piece)
    assert len(pieces) == 4 and b"".join(pieces) == data


def test_empty_object(store: Store) -> None:
    store.storage.put("empty.bin", b"")
    assert store.storage.exists("empty.bin") and store.storage.get("empty.bin") == b""


def test_a_folder_is_not_an_object(store: Store) -> None:
    storage = store.storage
    storage.put("a/b/c.jpg", b"x")
    assert not storage.exists("a/b")
    with pytest.raises(MediaNotFound):
        storage.get("a/b")
    with pytest.raises(MediaNotFound):
        storage.open_stream("a/b")
    storage.delete("a/b")
    assert storage.get("a/b/c.jpg") == b"x"


def test_no_partial_object_is_ever_visible(store: Store) -> None:
    """While one thread keeps replacing an object, every read sees one whole version, never a mix or a part."""
    storage = store.storage
    versions = [bytes([65 + i]) * (1024 * 1024) for i in range(2)]
    storage.put("race.bin", versions[0])
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                storage.put("race.bin", versions[i % 2])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(12):
            data = storage.get("race.bin")
            assert data in versions, f"a read saw {len(data)} bytes that are not one whole version"
            with storage.open_stream("race.bin") as stream:
                assert stream.read() in versions
    finally:
        stop.set()
        thread.join()
    assert errors == []


def test_a_failed_write_leaves_nothing_behind(store: Store) -> None:
    broken = store.broken()
    with pytest.raises(MediaUnavailable):
        broken.put("k.jpg", b"new")
    assert not store.storage.exists("k.jpg")


def test_an_outage_is_media_unavailable_not_not_found(store: Store) -> None:
    store.storage.put("there.jpg", b"x")
    broken = store.broken()
    for call in (broken.get, broken.open_stream):
        with pytest.raises(MediaUnavailable):
            call("there.jpg")
    with pytest.raises(MediaUnavailable):
        broken.put("there.jpg", b"y")
    with pytest.raises(MediaUnavailable):
        put_content_addressed(broken, b"z", namespace="originals")
    # Transient I/O, as the worker's and the API's existing OSError handling expects.
    assert issubclass(MediaUnavailable, OSError)
    assert not issubclass(MediaUnavailable, LookupError)


UNSAFE_KEYS = [
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
]


def test_unsafe_keys_are_refused(store: Store) -> None:
    storage = store.storage
    for key in UNSAFE_KEYS:
        with pytest.raises(ValueError):
            validate_key(key)
        for call in (storage.get, storage.exists, storage.delete, storage.open_stream):
            with pytest.raises(ValueError):
                call(key)
        with pytest.raises(ValueError):
            storage.put(key, b"x")


def test_content_addressed_write_without_asking_first(store: Store) -> None:
    """Renditions are written without a HEAD first: writing the same bytes under their content key again leaves
    one object with those bytes; with ``look_first`` (originals) an existing object is not uploaded again."""
    storage = store.storage
    data = b"a display copy"
    calls: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> object:
            attr = getattr(storage, name)
            if name in ("exists", "put") and callable(attr):

                def counted(*args: object, **kwargs: object) -> object:
                    calls.append(name)
                    return attr(*args, **kwargs)

                return counted
            return attr

    counting = cast(MediaStorage, Counting())
    key = put_content_addressed(counting, data, namespace="display", extension="jpg", look_first=False)
    assert (
        put_content_addressed(counting, data, namespace="display", extension="jpg", look_first=False) == key
    )
    assert calls == ["put", "put"]
    assert storage.get(key) == data
    stored = storage.keys()  # the store's listing (a method of the protocol, not a dict)
    assert [k for k in stored if k.startswith("display/")] == [key]
    calls.clear()
    assert put_content_addressed(counting, data, namespace="display", extension="jpg") == key
    assert calls == ["exists"]


def test_content_addressing(store: Store) -> None:
    storage = store.storage
    data = b"the same photo"
    digest = hashlib.sha256(data).hexdigest()
    key = content_key(data, namespace="originals", extension=".JPG")
    assert key == f"originals/{digest[:2]}/{digest[2:4]}/{digest}.jpg"
    assert content_key(data) == f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    assert put_content_addressed(storage, data, namespace="originals", extension="jpg") == key
    assert put_content_addressed(storage, data, namespace="originals", extension="jpg") == key
    assert storage.get(key) == data
    for bad in ("../x", "j/pg", "toolongextension"):
        with pytest.raises(ValueError):
            content_key(data, extension=bad)
    with pytest.raises(ValueError):
        content_key(data, namespace="../up")


# ---- the local directory only ----------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalMediaStorage:
    return LocalMediaStorage(tmp_path / "media")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_writes_leave_no_temporary_files(local: LocalMediaStorage) -> None:
    for i in range(5):
        local.put("x/y.bin", os.urandom(1000 + i))
    assert _files(local.root) == ["x/y.bin"]
    assert (local.root / "x" / "y.bin").stat().st_mode & 0o777 == 0o640


def test_local_files_and_folders_are_private_whatever_the_umask(local: LocalMediaStorage) -> None:
    previous = os.umask(0o000)  # the most permissive umask: modes must not depend on it
    try:
        local.put("originals/ab/cd/photo.jpg", b"exif with gps")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((local.root / "originals" / "ab" / "cd" / "photo.jpg").stat().st_mode) in (
        0o600,
        0o640,
    )
    for folder in (
        local.root,
        local.root / "originals",
        local.root / "originals" / "ab",
        local.root / "originals" / "ab" / "cd",
    ):
        assert stat.S_IMODE(folder.stat().st_mode) in (0o700, 0o750), folder


def test_local_failed_write_keeps_the_old_object(
    local: LocalMediaStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.put("k.jpg", b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(MediaUnavailable, match="disk full"):
        local.put("k.jpg", b"new")
    monkeypatch.undo()
    assert local.get("k.jpg") == b"old"
    assert _files(local.root) == ["k.jpg"]


def test_local_unsafe_keys_write_nothing_outside(local: LocalMediaStorage) -> None:
    for key in UNSAFE_KEYS:
        with pytest.raises(ValueError):
            local.put(key, b"x")
    assert not (local.root.parent / "etc").exists()


def test_local_symlinked_directory_inside_root_cannot_escape(
    local: LocalMediaStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    local.root.mkdir(parents=True, exist_ok=True)
    (local.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        local.put("link/x.jpg", b"x")
    assert list(outside.iterdir()) == []


def test_local_content_is_stored_once(local: LocalMediaStorage) -> None:
    key = put_content_addressed(local, b"photo", namespace="originals", extension="jpg")
    mtime = (local.root / key).stat().st_mtime_ns
    assert put_content_addressed(local, b"photo", namespace="originals", extension="jpg") == key
    assert (local.root / key).stat().st_mtime_ns == mtime


# ---- the object store only -------------------------------------------------------------------------------


def test_s3_objects_are_private_under_the_prefix_with_md5_and_sha256(s3_bucket: S3Bucket) -> None:
    storage = s3_bucket.storage()
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(
            {
                name: value.decode() if isinstance(value, bytes) else value
                for name, value in request.headers.items()
            }
        )

    storage.client.meta.events.register("before-send.s3.PutObject", record)
    data = b"original photo with exif"
    storage.put("originals/ab/cd/x.jpg", data)
    assert s3_bucket.object_names() == ["media/originals/ab/cd/x.jpg"]
    # Content-MD5 lets the store refuse a body damaged on the way; no ACL header is ever sent.
    assert sent[0]["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert not any(
        name.lower().startswith("x-amz-acl") or name.lower().startswith("x-amz-grant") for name in sent[0]
    )
    grants = s3_bucket.server.client().get_object_acl(
        Bucket=s3_bucket.bucket, Key="media/originals/ab/cd/x.jpg"
    )
    assert [g["Permission"] for g in grants["Grants"]] == ["FULL_CONTROL"]
    assert all(g["Grantee"].get("Type") == "CanonicalUser" for g in grants["Grants"])  # no AllUsers group
    assert storage.stored_sha256("originals/ab/cd/x.jpg") == hashlib.sha256(data).hexdigest()
    assert list(storage.keys()) == ["originals/ab/cd/x.jpg"]


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 503
    code = "SlowDown"

    # HTTP/1.1 answers botocore's "Expect: 100-continue" at once (HTTP/1.0 would leave it waiting a second).
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"<Error><Code>{self.code}</Code><Message>no</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def failing_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    status, code = request.param
    handler = type("Handler", (_Answer,), {"status": status, "code": code})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "failing_endpoint",
    [
        (503, "SlowDown"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (403, "AccessDenied"),
        (404, "NoSuchBucket"),
    ],
    indirect=True,
    ids=["throttled", "5xx", "unavailable", "misconfigured", "no-bucket"],
)
def test_s3_errors_of_the_store_are_unavailable(s3_bucket: S3Bucket, failing_endpoint: str) -> None:
    storage = s3_bucket.storage(endpoint_url=failing_endpoint, max_attempts=1)
    for call in (storage.get, storage.open_stream):
        with pytest.raises(MediaUnavailable):
            call("a.jpg")
    with pytest.raises(MediaUnavailable):
        storage.put("a.jpg", b"x")


def test_s3_a_store_that_does_not_answer_times_out(s3_bucket: S3Bucket) -> None:
    # A socket that accepts connections (the kernel's backlog) but never answers: the read timeout counts.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        storage = s3_bucket.storage(
            endpoint_url=f"http://127.0.0.1:{port}", read_timeout_s=0.3, max_attempts=1
        )
        with pytest.raises(MediaUnavailable):
            storage.get("a.jpg")
        with pytest.raises(MediaUnavailable):
            storage.exists("a.jpg")


def test_media_urls() -> None:
    default = Path("/srv/media")
    assert parse_media_url("", default) == LocalMediaLocation(default)
    assert parse_media_url("/data/media", default) == LocalMediaLocation(Path("/data/media"))
    assert parse_media_url("file:///data/media", default) == LocalMediaLocation(Path("/data/media"))
    assert parse_media_url("s3://photos", default) == S3MediaLocation("photos", "")
    assert parse_media_url("s3://photos/gp/prod/", default) == S3MediaLocation("photos", "gp/prod")
    for bad in (
        "s3://",
        "s3://A_B",
        "s3://photos/../x",
        "s3://photos/a?x=1",
        "ftp://host/x",
        "file://host/x",
    ):
        with pytest.raises(ValueError):
            parse_media_url(bad, default)


def test_the_factory_follows_the_settings(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from backend.config import get_settings
    from backend.media.factory import media_storage

    monkeypatch.setattr(get_settings(), "media_url", str(tmp_path / "elsewhere"))
    local = media_storage()
    assert isinstance(local, LocalMediaStorage) and local.root == (tmp_path / "elsewhere").resolve()
    s3_bucket.use(monkeypatch)
    s3 = media_storage()
    assert isinstance(s3, S3MediaStorage) and (s3.bucket, s3.prefix) == (s3_bucket.bucket, "media")
    assert media_storage() is s3  # one client per configuration, shared
    assert "gongping-test-secret" not in repr(s3) + repr(s3.config)
