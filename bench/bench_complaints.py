"""Issue 3 bench: 200 complaints with two 12 MP JPEG photos each; the API answers without waiting for photo work.

Each submission is timed in-process (ASGI) against a fresh database; the anchor is the time the photo work for
the same two photos takes (``backend.media.process``), which the answer must not include.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, fresh_postgres, machine, save, table

ROOT = Path(__file__).resolve().parent.parent


def child(url: str, media: str, complaints: int) -> None:
    """Runs in a subprocess: migrate, then submit ``complaints`` complaints with two 12 MP photos each."""
    os.environ.update(
        {
            "GONGPING_DATABASE_URL": url,
            "GONGPING_MEDIA_DIR": media,
            "GONGPING_ARGON2_MEMORY_KIB": "8192",
            "GONGPING_COMPLAINT_RATE_PER_ACCOUNT": "100000/hour",
            "GONGPING_COMPLAINT_RATE_PER_ADDRESS": "100000/hour",
        }
    )
    import asyncio

    import httpx

    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Role
    from backend.db import session_scope
    from backend.main import create_app
    from backend.media import process
    from backend.migrate import upgrade
    from tests.fixtures.media_images import jpeg, photo_like

    upgrade(url)
    with session_scope() as session:
        auth_service.create_account(
            session,
            actor=SYSTEM,
            username="bench_device",
            password="Bench-device-2026",
            role=Role.consumer_device,
        )
    photos = [jpeg(photo_like(4000, 3000, seed=seed), quality=92) for seed in (1, 2)]
    started = time.perf_counter()
    for photo in photos:
        process(photo)
    photo_work = time.perf_counter() - started
    part = json.dumps(
        {
            "category": "short_weight",
            "description": "复称短秤",
            "location": {"lon": 120.1052, "lat": 30.2795, "coord_system": "gcj02"},
            "photo_kinds": ["receipt", "scale_display"],
        }
    )

    async def run() -> list[float]:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            token = await client.post(
                "/api/v1/auth/token", data={"username": "bench_device", "password": "Bench-device-2026"}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            samples = []
            for i in range(complaints):
                # A few bytes after the end make every upload new (phones append such trailers too).
                files = [
                    ("photos", (f"{i}-{n}.jpg", p + f"{i}-{n}".encode(), "image/jpeg"))
                    for n, p in enumerate(photos)
                ]
                t = time.perf_counter()
                resp = await client.post(
                    "/api/v1/complaint-form",
                    data={"complaint": part},
                    files=files,
                    headers={**headers, "Idempotency-Key": f"bench-{i}"},
                )
                samples.append(time.perf_counter() - t)
                assert resp.status_code == 201, resp.text
                assert all(p["status"] == "pending" for p in resp.json()["photos"])
            return samples

    samples = sorted(asyncio.run(run()))
    print(
        json.dumps(
            {
                "p50_ms": samples[len(samples) // 2] * 1000,
                "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
                "photo_work_ms": photo_work * 1000,
                "photo_mb": sum(len(p) for p in photos) / 2**20,
            }
        )
    )


def _run_child(url: str, media: str, complaints: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_complaints", "--child", url, media, str(complaints)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Run on SQLite and PostgreSQL and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--complaints", type=int, default=200)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    figures: list[Figure] = []
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        with fresh_postgres() as pg_url:
            runs.append(("PostgreSQL", pg_url))
            for label, url in runs:
                r = _run_child(url, str(Path(tmp) / f"media-{label}"), args.complaints)
                extra[label] = r
                for stat in ("p50_ms", "p99_ms"):
                    figures.append(
                        Figure(
                            f"POST /api/v1/complaint-form {stat[:3]} on {label}, {args.complaints} × two 12 MP JPEGs"
                            f" ({r['photo_mb']:.1f} MB)",
                            r[stat],
                            "ms",
                            r["photo_work_ms"],
                            f"< photo work for the two ({r['photo_work_ms']:.0f} ms)",
                            "lower",
                        )
                    )
    print(f"Machine: {machine()}\n")
    print(table("Issue 3 — complaint intake", figures))
    save("complaints", figures, extra)


if __name__ == "__main__":
    main()
