"""An S3-compatible object store for tests and benches: moto's standalone server in its own process.

No real object store server can be installed from Debian or PyPI here in a practical way (MinIO and Ceph are
neither), so the tests use moto's server (``moto[server]``, a dev dependency) as a stand-in over real HTTP,
exactly as the FCM stand-in is used for push: boto3 talks to it like to any S3-compatible endpoint (signed
requests, Content-MD5 checks, 404s, streaming bodies), and stopping its process is a real outage (connection
refused).

Use from code (benches, multi-process tests)::

    with MotoServer.spawn() as server:              # python -m moto.server on a free port
        bucket = server.create_bucket()             # a fresh, empty bucket
        env = server.media_env(bucket, prefix="m")  # GONGPING_MEDIA_URL=s3://bucket/m and the endpoint
        ...
        server.stop()                               # outage: connections refused (and its data is gone)
        server.start()                              # up again on the same port, empty

or from pytest: the ``s3_server`` fixture (one server per test session) and ``s3_bucket`` (a fresh bucket for
each test, as an :class:`S3Bucket` with ``endpoint_url``, ``bucket``, ``env`` and ``use(monkeypatch)``); tests/conftest.py
imports both, so every test can ask for them.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import pytest
from pydantic import SecretStr

from tests.support.processes import stop_process
from tests.support.standin_http import REPO_ROOT, Served

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from backend.media.s3 import S3Config, S3MediaStorage

#: moto accepts any credentials; these make boto3 sign requests without looking for real ones.
ACCESS_KEY_ID = "gongping-test"
SECRET_ACCESS_KEY = "gongping-test-secret"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer(Served):
    """``python -m moto.server`` in a child process on one port; can be stopped (an outage) and started again."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(cls, host: str = "127.0.0.1", port: int | None = None) -> MotoServer:
        """Start a server on ``port`` (a free one if None) and wait until it answers."""
        return cls(host, port).start()

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint to give boto3 (``GONGPING_MEDIA_S3_ENDPOINT_URL``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """Start the child (on the same port as before) and wait until it answers HTTP."""
        if self.running:
            return self
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
        env.pop("MOTO_PORT", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with {self.proc.returncode} (port {self.port} taken?)"
                )
            try:
                with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"moto server did not answer on {self.endpoint_url} within {START_TIMEOUT_S:.0f} s"
        )

    def stop(self) -> None:
        """Stop the child: from now on connections are refused (and everything it stored is gone)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            stop_process(self.proc, timeout=10)
        self.proc = None

    def client(self) -> S3Client:
        """A boto3 S3 client for this server (path-style, the test credentials; shared)."""
        return _client(self.endpoint_url, 2.0, 10.0, 2)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name unless given) and return its name."""
        bucket = name or f"gongping-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def media_env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The ``GONGPING_MEDIA_*`` environment that points a Gongping process at ``bucket`` here."""
        return {
            "GONGPING_MEDIA_URL": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
            "GONGPING_MEDIA_S3_ENDPOINT_URL": self.endpoint_url,
            "GONGPING_MEDIA_S3_REGION": REGION,
            "GONGPING_MEDIA_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "GONGPING_MEDIA_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "GONGPING_MEDIA_S3_ADDRESSING_STYLE": "path",
            # A stopped server refuses at once; keep an outage's answer quick in tests.
            "GONGPING_MEDIA_S3_CONNECT_TIMEOUT_S": "2",
            "GONGPING_MEDIA_S3_READ_TIMEOUT_S": "10",
            "GONGPING_MEDIA_S3_MAX_ATTEMPTS": "2",
        }


@functools.lru_cache(maxsize=32)
def _client(
    endpoint_url: str | None, connect_timeout_s: float, read_timeout_s: float, max_attempts: int
) -> S3Client:
    from backend.media.s3 import S3Config, make_client

    return make_client(
        S3Config(
            bucket="unused",
            endpoint_url=endpoint_url,
            region=REGION,
            access_key_id=SecretStr(ACCESS_KEY_ID),
            secret_access_key=SecretStr(SECRET_ACCESS_KEY),
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_attempts=max_attempts,
        )
    )


@dataclass
class S3Bucket:
    """A fresh bucket on a running :class:`MotoServer`, and how to point Gongping at it."""

    server: MotoServer
    bucket: str
    prefix: str = "media"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = self.server.media_env(self.bucket, self.prefix)

    @property
    def endpoint_url(self) -> str:
        """The server's S3 endpoint."""
        return self.server.endpoint_url

    @property
    def url(self) -> str:
        """``GONGPING_MEDIA_URL`` for this bucket and prefix."""
        return self.env["GONGPING_MEDIA_URL"]

    def settings_values(self) -> dict[str, Any]:
        """The same as :attr:`env`, as typed ``Settings`` field values."""
        return {
            "media_url": self.url,
            "media_s3_endpoint_url": self.endpoint_url,
            "media_s3_region": REGION,
            "media_s3_access_key_id": SecretStr(ACCESS_KEY_ID),
            "media_s3_secret_access_key": SecretStr(SECRET_ACCESS_KEY),
            "media_s3_addressing_style": "path",
            "media_s3_connect_timeout_s": 2.0,
            "media_s3_read_timeout_s": 10.0,
            "media_s3_max_attempts": 2,
        }

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process's settings (hence ``media_storage()``) at the bucket for the current test."""
        from backend.config import get_settings

        settings = get_settings()
        for name, value in self.settings_values().items():
            monkeypatch.setattr(settings, name, value)

    def config(self, **changes: Any) -> S3Config:
        """The media store's client configuration for this bucket (``changes`` override fields)."""
        from backend.media.s3 import S3Config

        values: dict[str, Any] = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": SecretStr(ACCESS_KEY_ID),
            "secret_access_key": SecretStr(SECRET_ACCESS_KEY),
            "connect_timeout_s": 2.0,
            "read_timeout_s": 10.0,
            "max_attempts": 2,
        }
        return S3Config(**{**values, **changes})

    def storage(self, **changes: Any) -> S3MediaStorage:
        """An ``S3MediaStorage`` on this bucket (clients are shared per configuration: building one is slow)."""
        from backend.media.s3 import S3MediaStorage

        config = self.config(**changes)
        return S3MediaStorage(
            config,
            _client(
                config.endpoint_url, config.connect_timeout_s, config.read_timeout_s, config.max_attempts
            ),
        )

    def object_names(self) -> list[str]:
        """Every object name in the bucket (prefix included), sorted."""
        names: list[str] = []
        for page in self.server.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            names += [item["Key"] for item in page.get("Contents", [])]
        return sorted(names)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """One moto S3 server (its own process) for the test session."""
    with MotoServer.spawn() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> S3Bucket:
    """A fresh, empty bucket on the session's moto server (restarted first if a test stopped it)."""
    s3_server.start()
    return S3Bucket(s3_server, s3_server.create_bucket())
