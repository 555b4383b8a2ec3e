"""``gongping media migrate``: a local store copied to the object store (moto's server), verified by SHA-256,
resumable after an interruption, a damaged copy repaired and a corrupted source reported with a failing exit."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.media.migrate import Outcome, migrate
from backend.media.storage import LocalMediaStorage, put_content_addressed
from tests.support.s3_standin import S3Bucket


def _fill(root: Path, count: int) -> tuple[LocalMediaStorage, dict[str, bytes]]:
    local = LocalMediaStorage(root)
    objects: dict[str, bytes] = {}
    for i in range(count):
        data = os.urandom(2000 + i)
        namespace = ("complaint-originals", "complaint-display", "intake")[i % 3]
        objects[put_content_addressed(local, data, namespace=namespace, extension="jpg")] = data
    return local, objects


def _run(bucket: S3Bucket, source: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["media", "migrate", "--to", bucket.url, "--from", str(source), *extra])
    return result.exit_code, result.output.replace("\n", "")  # rich wraps long lines


def test_migrate_copies_verifies_and_resumes(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_bucket.use(monkeypatch)  # the target's client settings come from GONGPING_MEDIA_S3_*
    local, objects = _fill(tmp_path / "media", 9)
    target = s3_bucket.storage()

    # Interrupted after four objects (as by Ctrl-C): what is there is whole and verified.
    seen: list[str] = []

    def interrupt(key: str, outcome: Outcome) -> None:
        seen.append(key)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(local, target, jobs=2, on_object=interrupt)
    first = set(target.keys())
    assert 4 <= len(first) < len(objects)
    assert all(target.get(key) == objects[key] for key in first)

    # Run again through the command: the copied ones are skipped, the rest copied, all verified.
    code, output = _run(s3_bucket, tmp_path / "media")
    assert code == 0, output
    assert f"copied {len(objects) - len(first)}" in output and f"already there {len(first)}" in output
    assert sorted(target.keys()) == sorted(objects)
    assert all(target.get(key) == data for key, data in objects.items())
    assert s3_bucket.object_names() == sorted(f"media/{key}" for key in objects)

    # A third run has nothing to do.
    code, output = _run(s3_bucket, tmp_path / "media")
    assert code == 0 and f"already there {len(objects)}" in output and "copied 0" in output


def test_migrate_repairs_a_damaged_copy_and_reports_a_corrupted_source(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_bucket.use(monkeypatch)
    local, objects = _fill(tmp_path / "media", 4)
    target = s3_bucket.storage()
    keys = sorted(objects)
    # In the target already but with other bytes (a damaged or half-uploaded copy from some other tool).
    target.put(keys[0], b"damaged")
    # A source file whose bytes no longer match the SHA-256 its key names.
    (local.root / keys[1]).write_bytes(b"bit rot")

    code, output = _run(s3_bucket, local.root)
    assert code == 1, output
    assert "repaired 1" in output and "failed 1" in output and "copied 2" in output
    assert keys[1] in output and "source corrupted" in output
    assert target.get(keys[0]) == objects[keys[0]]  # repaired, verified
    assert not target.exists(keys[1])  # never copied
    assert hashlib.sha256(target.get(keys[2])).hexdigest() in keys[2]


def test_migrate_refuses_bad_arguments_and_stops_on_an_outage(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_bucket.use(monkeypatch)
    _fill(tmp_path / "media", 2)
    runner = CliRunner()
    same = runner.invoke(
        cli, ["media", "migrate", "--to", str(tmp_path / "media"), "--from", str(tmp_path / "media")]
    )
    assert same.exit_code == 2 and "same store" in same.output
    bad = runner.invoke(cli, ["media", "migrate", "--to", "ftp://x/y", "--from", str(tmp_path / "media")])
    assert bad.exit_code == 2 and "unsupported store" in bad.output
    monkeypatch.setattr(
        __import__("backend.config", fromlist=["get_settings"]).get_settings(),
        "media_s3_endpoint_url",
        "http://127.0.0.1:9",
    )
    code, output = _run(s3_bucket, tmp_path / "media")
    assert code == 1 and "run again to resume" in output
