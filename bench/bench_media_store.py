"""Benchmark the photo pipeline on the S3-compatible object store against the local directory, same run.

Each photo goes through what the API and the worker do with it: the original stored under its content key
(``exists`` then ``put``), read back by the worker, processed (``backend.media.process``: display copy,
thumbnail, evidence, pHash) and both renditions stored. ``--workers`` processes (default 2) work at once, as the
Celery worker's pool does. Rounds alternate between the two stores (a fresh directory or prefix each round, so
nothing is skipped as already stored), so a busy machine slows both alike.

The object store is moto's standalone server in its own process (tests/support/s3_standin.py; no real
S3-compatible server can be installed here), on the same two cores as the workers: in production the store
runs elsewhere, so this overstates its cost. Also measured: the store operations alone (put and get of a
3 MB original) per store.

    .venv/bin/python -m bench.bench_media_store [--count 12] [--rounds 3] [--workers 2] [--size 3000x2250]

Figures saved to bench/out/media_store.json; the target is ≥ 80 % of the local directory's throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from media_images import jpeg, make_exif, photo_like  # noqa: E402

from bench.common import Figure, machine, save, table  # noqa: E402

#: ("local", root) or ("s3", endpoint, bucket, prefix)
Spec = tuple[str, ...]


@cache
def _storage(spec: Spec) -> object:
    from pydantic import SecretStr

    from backend.media.s3 import S3Config, S3MediaStorage
    from backend.media.storage import LocalMediaStorage
    from tests.support.s3_standin import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

    if spec[0] == "local":
        return LocalMediaStorage(Path(spec[1]))
    _, endpoint, bucket, prefix = spec
    return S3MediaStorage(
        S3Config(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=endpoint,
            region=REGION,
            access_key_id=SecretStr(ACCESS_KEY_ID),
            secret_access_key=SecretStr(SECRET_ACCESS_KEY),
        )
    )


def _pipeline(job: tuple[Spec, str]) -> float:
    """One photo as the API and the worker handle it; returns this process's CPU seconds."""
    from backend.complaints.photos import store_renditions
    from backend.media.processing import process
    from backend.media.storage import MediaStorage, put_content_addressed

    spec, path = job
    storage = _storage(spec)
    assert isinstance(storage, MediaStorage)
    started = time.process_time()
    original = put_content_addressed(
        storage, Path(path).read_bytes(), namespace="complaint-originals", extension="jpg"
    )
    store_renditions(storage, process(storage.get(original)))
    return time.process_time() - started


def _warm(spec: Spec) -> int:
    from backend.media.processing import process
    from backend.media.storage import MediaStorage

    storage = _storage(spec)
    assert isinstance(storage, MediaStorage)
    storage.put("warm/up.jpg", jpeg(photo_like(320, 240, seed=1)))
    process(storage.get("warm/up.jpg"))
    return os.getpid()


def _store_ops(spec: Spec, data: bytes, count: int) -> tuple[float, float]:
    """Median milliseconds of a put and of a get of ``data``."""
    from backend.media.storage import MediaStorage

    storage = _storage(spec)
    assert isinstance(storage, MediaStorage)
    puts, gets = [], []
    for i in range(count):
        started = time.perf_counter()
        storage.put(f"ops/{i}.jpg", data)
        puts.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert storage.get(f"ops/{i}.jpg") == data
        gets.append(time.perf_counter() - started)
    return 1000 * statistics.median(puts), 1000 * statistics.median(gets)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=12, help="photos per round (default 12)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds per store, alternating (default 3)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--size", default="3000x2250", help="photo size WxH (default 3000x2250, 6.75 MP)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    from tests.support.s3_standin import MotoServer

    with tempfile.TemporaryDirectory(prefix="gongping-bench-media-") as tmp, MotoServer.spawn() as server:
        folder = Path(tmp)
        paths = []
        for i in range(args.count):
            exif = make_exif(orientation=(1, 6, 3, 8)[i % 4], latitude=30.27 + i / 1000, longitude=120.15)
            path = folder / f"photo-{i:02d}.jpg"
            path.write_bytes(jpeg(photo_like(width, height, seed=i), exif=exif, quality=92))
            paths.append(str(path))
        mean_mb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6
        bucket = server.create_bucket()
        seconds: dict[str, list[float]] = {"local": [], "s3": []}
        cpu: dict[str, list[float]] = {"local": [], "s3": []}
        server_cpu: list[float] = []
        assert server.proc is not None
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for kind in ("local", "s3"):  # warm both stores' clients and the decoder in every worker
                spec = (
                    ("local", str(folder / "warm"))
                    if kind == "local"
                    else ("s3", server.endpoint_url, bucket, "warm")
                )
                list(pool.map(_warm, [spec] * args.workers * 2))
            for round_ in range(args.rounds):
                order = ("local", "s3") if round_ % 2 == 0 else ("s3", "local")
                for kind in order:
                    prefix = f"round-{round_}-{uuid.uuid4().hex[:6]}"
                    spec = (
                        ("local", str(folder / prefix))
                        if kind == "local"
                        else ("s3", server.endpoint_url, bucket, prefix)
                    )
                    server_before = _cpu_seconds(server.proc.pid)
                    started = time.perf_counter()
                    cpus = list(pool.map(_pipeline, [(spec, p) for p in paths]))
                    seconds[kind].append(time.perf_counter() - started)
                    cpu[kind].append(sum(cpus))
                    if kind == "s3":
                        server_cpu.append(_cpu_seconds(server.proc.pid) - server_before)
        original = Path(paths[0]).read_bytes()
        ops = {
            "local": _store_ops(("local", str(folder / "ops")), original, 20),
            "s3": _store_ops(("s3", server.endpoint_url, bucket, "ops"), original, 20),
        }

    rate = {kind: args.count / statistics.median(values) for kind, values in seconds.items()}
    ratio = rate["s3"] / rate["local"]
    cpu_ms = {kind: 1000 * statistics.median(values) / args.count for kind, values in cpu.items()}
    server_ms = 1000 * statistics.median(server_cpu) / args.count
    figures = [
        Figure(
            "photo pipeline on the object store (moto), photos/s",
            rate["s3"],
            "photos/s",
            0.8 * rate["local"],
            f"≥ 80 % of the local directory ({rate['local']:.2f} photos/s)",
            "higher",
        ),
        # The stand-in server shares the two cores with the workers (a real store runs elsewhere): what the
        # object store costs the worker machine itself is the worker's own CPU per photo.
        Figure(
            "worker CPU per photo on the object store",
            cpu_ms["s3"],
            "ms",
            cpu_ms["local"] / 0.8,
            f"≤ local ({cpu_ms['local']:.0f} ms) / 0.8",
            "lower",
        ),
    ]
    report = {
        "photos": args.count,
        "size": args.size,
        "mean_original_mb": round(mean_mb, 2),
        "workers": args.workers,
        "rounds": args.rounds,
        "seconds": seconds,
        "photos_per_second": {k: round(v, 3) for k, v in rate.items()},
        "object_store_vs_local": round(ratio, 3),
        "worker_cpu_ms_per_photo": {k: round(v, 1) for k, v in cpu_ms.items()},
        "standin_server_cpu_ms_per_photo": round(server_ms, 1),
        "store_ops_ms_median": {k: {"put": round(v[0], 2), "get": round(v[1], 2)} for k, v in ops.items()},
    }
    save("media_store", figures, extra={"report": report})
    print(f"_{machine()}_\n")
    print(table("Photo pipeline: object store vs local directory (same run)", figures))
    print()
    print(
        f"{args.count} photos of {args.size} ({mean_mb:.1f} MB each), {args.workers} workers, {args.rounds} rounds "
        f"alternating: local {rate['local']:.2f} photos/s, object store {rate['s3']:.2f} photos/s "
        f"(ratio {ratio:.2f}); worker CPU per photo {report['worker_cpu_ms_per_photo']} ms, the moto "
        f"server's {server_ms:.0f} ms on the same cores; "
        f"store ops on one original (median ms) {report['store_ops_ms_median']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
