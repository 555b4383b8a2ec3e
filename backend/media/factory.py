"""The media store this process uses, chosen by ``GONGPING_MEDIA_URL``: a local directory or an S3 bucket.

Everything that stores or reads photos and uploaded files (complaints, uploads, intake, photo processing, the
photo routes, the workers) asks :func:`media_storage`; stores are built once per configuration and shared
(both are thread-safe), so asking per request costs a dictionary look-up.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from backend.config import LocalMediaLocation, MediaLocation, S3MediaLocation, Settings, get_settings
from backend.media.storage import LocalMediaStorage, MediaStorage

if TYPE_CHECKING:
    from backend.media.s3 import S3Config, S3MediaStorage


def s3_config(location: S3MediaLocation, settings: Settings) -> S3Config:
    """The client configuration for a bucket named by ``location``, from the ``GONGPING_MEDIA_S3_*`` settings."""
    # Imported here: boto3 takes a noticeable part of a second to import, and a local store never needs it.
    from backend.media.s3 import S3Config

    return S3Config(
        bucket=location.bucket,
        prefix=location.prefix,
        endpoint_url=settings.media_s3_endpoint_url,
        region=settings.media_s3_region,
        access_key_id=settings.media_s3_access_key_id,
        secret_access_key=settings.media_s3_secret_access_key,
        addressing_style=settings.media_s3_addressing_style,
        connect_timeout_s=settings.media_s3_connect_timeout_s,
        read_timeout_s=settings.media_s3_read_timeout_s,
        max_attempts=settings.media_s3_max_attempts,
    )


@lru_cache(maxsize=8)
def _local(root: Path) -> LocalMediaStorage:
    return LocalMediaStorage(root)


@lru_cache(maxsize=8)
def _s3(config: S3Config) -> S3MediaStorage:
    from backend.media.s3 import S3MediaStorage

    return S3MediaStorage(config)


def storage_at(location: MediaLocation, settings: Settings | None = None) -> MediaStorage:
    """The (shared) store at ``location``; an S3 location takes its client settings from ``settings``."""
    if isinstance(location, LocalMediaLocation):
        return _local(location.path)
    return _s3(s3_config(location, settings or get_settings()))


def media_storage() -> MediaStorage:
    """Where this deployment's media live (``GONGPING_MEDIA_URL``; unset: the directory ``media_dir``)."""
    settings = get_settings()
    return storage_at(settings.media_location, settings)
