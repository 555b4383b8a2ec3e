"""Issue 16 bench (a): complaints with three 4 MB photos each through a network that cuts every connection.

A local TCP proxy (asyncio, 127.0.0.1, port 0) sits between the client and uvicorn and closes each connection
after a number of client-to-server bytes drawn uniformly between 1 MB and 16 MB (a new draw per connection,
from a seeded stream). Through it, in the same run and with the same seed:

* the **app flow**: each photo uploaded ahead (``POST /api/v1/uploads``, retried until it answers; a photo sent
  again answers with the same upload), then the complaint as JSON naming the uploads, retried with the same
  ``Idempotency-Key``;
* the **multipart flow** (the web page's form): the complaint with its three photos in one request, retried
  with the same ``Idempotency-Key`` until it answers.

Each flow files the same complaints from its own device account. Checked afterwards in the database: every
complaint exists exactly once with its three photos in order (by SHA-256). Reported: bytes the client sent
through the proxy over the photos' total (target ≤ 1.5× for the app flow), attempts and wall time.

The photos are a 2000×1500 camera-like JPEG padded with comment segments to 4 MiB, each one unique (the
padding differs), so the server decodes and stores real images while the network carries 4 MiB per photo.

Run: .venv/bin/python -m bench.bench_app_flaky [--complaints 100] [--seed 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import Figure, machine, save, table
from tests.support.processes import pick_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
PHOTO_BYTES = 4 * MB
CUT_MIN, CUT_MAX = 1 * MB, 16 * MB
PASSWORD = "Bench-flaky-2026"


# ---- the flaky proxy ----------------------------------------------------------------------------------------


@dataclass
class ProxyStats:
    """What went through the proxy, client to server."""

    connections: int = 0
    cuts: int = 0
    upstream_bytes: int = 0


class FlakyProxy:
    """Forwards 127.0.0.1:<port> to the server; closes each connection after its drawn number of bytes."""

    def __init__(self, target_port: int, seed: int) -> None:
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.stats = ProxyStats()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    def reseed(self, seed: int) -> None:
        """Start a flow with the same stream of cuts as the other flow."""
        self.rng = random.Random(seed)
        self.stats = ProxyStats()

    async def _pipe_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: int) -> None:
        sent = 0
        while True:
            data = await reader.read(256 * 1024)
            if not data:
                break
            room = budget - sent
            if len(data) >= room:
                writer.write(data[:room])
                self.stats.upstream_bytes += room
                self.stats.cuts += 1
                break
            writer.write(data)
            sent += len(data)
            self.stats.upstream_bytes += len(data)
            await writer.drain()

    async def _pipe_down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        budget = self.rng.randint(CUT_MIN, CUT_MAX)
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        up = asyncio.ensure_future(self._pipe_up(client_r, server_w, budget))
        down = asyncio.ensure_future(self._pipe_down(server_r, client_w))
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A cut (or either side closing) drops the whole connection, as a lost mobile link does.
            for task in (up, down):
                task.cancel()
            for w in (client_w, server_w):
                w.close()

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            async with server:
                await self._stop.wait()

        asyncio.run(main())

    @contextmanager
    def running(self) -> Iterator[FlakyProxy]:
        """Serve in a thread of its own."""
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        self._ready.wait(10)
        try:
            yield self
        finally:
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
            thread.join(10)


# ---- server and data ---------------------------------------------------------------------------------------


def _environment(url: str, media: str) -> dict[str, str]:
    return {
        **os.environ,
        "GONGPING_DATABASE_URL": url,
        "GONGPING_MEDIA_DIR": media,
        "GONGPING_ARGON2_MEMORY_KIB": "8192",
        "GONGPING_COMPLAINT_RATE_PER_ACCOUNT": "100000/hour",
        "GONGPING_COMPLAINT_RATE_PER_ADDRESS": "100000/hour",
        "GONGPING_UPLOAD_RATE_PER_ACCOUNT": "100000/hour",
    }


def seed_child(url: str) -> None:
    """Runs in a subprocess: migrate and create the two device accounts (one per flow)."""
    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Role
    from backend.db import session_scope
    from backend.migrate import upgrade

    upgrade(url)
    with session_scope() as session:
        for name in ("flaky_app", "flaky_web"):
            auth_service.create_account(
                session, actor=SYSTEM, username=name, password=PASSWORD, role=Role.consumer_device
            )


@contextmanager
def serve(env: dict[str, str]) -> Iterator[int]:
    """uvicorn (one worker) on 127.0.0.1; yields its port."""
    port = pick_port()
    process = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "uvicorn",
                "backend.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ),
            *("--log-level", "warning", "--no-access-log"),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        stop_process(process, timeout=30)


def _pad_jpeg(base: bytes, tag: bytes, size: int) -> bytes:
    """``base`` with COM segments after SOI up to ``size`` bytes; ``tag`` makes the bytes unique."""
    assert base[:2] == b"\xff\xd8"
    need = size - len(base)
    segments = []
    first = True
    while need > 0:
        payload_len = min(65533, need - 4) if need > 4 else 0
        payload = (tag if first else b"") + b"\x00" * max(0, payload_len - (len(tag) if first else 0))
        first = False
        payload = payload[:payload_len]
        segments.append(b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload)
        need -= len(payload) + 4
    data = base[:2] + b"".join(segments) + base[2:]
    return data


def make_photos(complaints: int) -> list[list[bytes]]:
    """Three unique 4 MiB JPEGs per complaint (three base pictures, padding tagged per photo)."""
    from tests.fixtures.media_images import jpeg, photo_like

    bases = [jpeg(photo_like(2000, 1500, seed=seed), quality=92) for seed in (11, 12, 13)]
    return [
        [_pad_jpeg(bases[k], f"bench-{i}-{k}".encode(), PHOTO_BYTES) for k in range(3)]
        for i in range(complaints)
    ]


def complaint_body(i: int) -> dict[str, object]:
    """The complaint both flows file as number ``i``."""
    return {
        "category": "short_weight",
        "description": f"复称短秤（第 {i} 件）",
        "location": {"lon": 120.1052, "lat": 30.2795, "coord_system": "gcj02"},
        "photo_kinds": ["receipt", "scale_display", "goods"],
    }


# ---- the two flows -----------------------------------------------------------------------------------------


@dataclass
class FlowResult:
    """One flow's outcome as the client saw it."""

    attempts: int = 0
    transport_errors: int = 0
    seconds: float = 0.0
    complaint_ids: dict[str, int] = field(default_factory=dict)


def _token(base: str, username: str) -> str:
    for _ in range(50):
        try:
            answer = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": username, "password": PASSWORD}, timeout=60
            )
            return str(answer.json()["access_token"])
        except httpx.TransportError:
            continue
    raise RuntimeError("could not sign in through the proxy")


def _until_answered(result: FlowResult, send: Callable[[], httpx.Response]) -> httpx.Response:
    for _ in range(200):
        result.attempts += 1
        try:
            answer = send()
        except httpx.TransportError:
            result.transport_errors += 1
            continue
        if answer.status_code >= 500:
            result.transport_errors += 1
            continue
        return answer
    raise RuntimeError("no answer after 200 attempts")


def app_flow(base: str, photos: list[list[bytes]], run: str) -> FlowResult:
    """Upload each photo ahead (retried alone), then file the complaint as JSON (retried with its key)."""
    result = FlowResult()
    headers = {"Authorization": f"Bearer {_token(base, 'flaky_app')}"}
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for i, three in enumerate(photos):
            ids = []
            for photo in three:
                answer = _until_answered(
                    result,
                    lambda photo=photo: client.post(
                        "/api/v1/uploads", files={"photo": ("photo.jpg", photo, "image/jpeg")}
                    ),
                )
                assert answer.status_code in (200, 201), answer.text
                ids.append(answer.json()["id"])
            key = f"{run}-app-{i}"
            body = json.dumps({**complaint_body(i), "photo_uploads": ids}, ensure_ascii=False).encode()
            answer = _until_answered(
                result,
                lambda body=body, key=key: client.post(
                    "/api/v1/complaints",
                    content=body,
                    headers={"Content-Type": "application/json", "Idempotency-Key": key},
                ),
            )
            assert answer.status_code in (200, 201), answer.text
            result.complaint_ids[key] = int(answer.json()["id"])
    result.seconds = time.perf_counter() - started
    return result


def multipart_flow(base: str, photos: list[list[bytes]], run: str) -> FlowResult:
    """The web form: the complaint and its three photos in one request, retried whole with its key."""
    result = FlowResult()
    headers = {"Authorization": f"Bearer {_token(base, 'flaky_web')}"}
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for i, three in enumerate(photos):
            key = f"{run}-web-{i}"
            part = json.dumps(complaint_body(i), ensure_ascii=False)
            files = [("photos", (f"p{k}.jpg", p, "image/jpeg")) for k, p in enumerate(three)]
            answer = _until_answered(
                result,
                lambda part=part, files=files, key=key: client.post(
                    "/api/v1/complaint-form",
                    data={"complaint": part},
                    files=files,
                    headers={"Idempotency-Key": key},
                ),
            )
            assert answer.status_code in (200, 201), answer.text
            result.complaint_ids[key] = int(answer.json()["id"])
    result.seconds = time.perf_counter() - started
    return result


def verify(url: str, username: str, expected: dict[str, list[str]]) -> tuple[int, int]:
    """(complaints of the account, complaints whose photos are exactly the expected SHA-256s in order)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT k.key, p.original_sha256 FROM idempotency_key k "
                "JOIN account a ON a.id = k.account_id "
                "JOIN complaint_photo p ON p.complaint_id = k.complaint_id "
                "WHERE a.username = :u ORDER BY k.key, p.position"
            ),
            {"u": username},
        ).all()
        total = conn.execute(
            text(
                "SELECT count(*) FROM complaint c JOIN account a ON a.id = c.account_id WHERE a.username = :u"
            ),
            {"u": username},
        ).scalar_one()
    engine.dispose()
    found: dict[str, list[str]] = {}
    for key, sha in rows:
        found.setdefault(str(key), []).append(str(sha))
    exact = sum(1 for key, shas in expected.items() if found.get(key) == shas)
    return int(total), exact


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--complaints", type=int, default=100)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--seed-db", metavar="DATABASE_URL")
    args = parser.parse_args()
    if args.seed_db:
        seed_child(args.seed_db)
        return
    import hashlib

    with tempfile.TemporaryDirectory(prefix="gongping-flaky-") as tmp:
        url = f"sqlite:///{tmp}/flaky.db"
        env = _environment(url, f"{tmp}/media")
        subprocess.run(
            [sys.executable, "-m", "bench.bench_app_flaky", "--seed-db", url], cwd=ROOT, env=env, check=True
        )
        print(f"making {args.complaints * 3} photos of {PHOTO_BYTES / MB:.0f} MiB", flush=True)
        photos = make_photos(args.complaints)
        photo_total = sum(len(p) for three in photos for p in three)
        shas = [[hashlib.sha256(p).hexdigest() for p in three] for three in photos]
        run = f"r{int(time.time())}"
        results: dict[str, tuple[FlowResult, ProxyStats, int, int]] = {}
        with serve(env) as port:
            proxy = FlakyProxy(port, args.seed)
            with proxy.running():
                base = f"http://127.0.0.1:{proxy.port}"
                for name, flow, user in (
                    ("app", app_flow, "flaky_app"),
                    ("multipart", multipart_flow, "flaky_web"),
                ):
                    proxy.reseed(args.seed)
                    print(f"{name} flow through the proxy", flush=True)
                    outcome = flow(base, photos, run)
                    stats = proxy.stats
                    expected = {
                        f"{run}-{'app' if name == 'app' else 'web'}-{i}": s for i, s in enumerate(shas)
                    }
                    total, exact = verify(url, user, expected)
                    results[name] = (outcome, stats, total, exact)
                    print(
                        f"  {name}: {outcome.attempts} requests, {outcome.transport_errors} cut, "
                        f"{stats.connections} connections, {stats.upstream_bytes / MB:,.0f} MiB sent "
                        f"({stats.upstream_bytes / photo_total:.2f}× the photos), {outcome.seconds:.0f} s; "
                        f"{total} complaints, {exact} exact",
                        flush=True,
                    )
    figures = [
        Figure(
            f"{name} flow: complaints stored exactly once with their 3 photos",
            exact,
            "",
            args.complaints,
            f"= {args.complaints}",
            "higher",
        )
        for name, (_outcome, _stats, _total, exact) in results.items()
    ]
    app_ratio = results["app"][1].upstream_bytes / photo_total
    web_ratio = results["multipart"][1].upstream_bytes / photo_total
    figures.append(Figure("app flow: bytes sent / photo bytes", app_ratio, "×", 1.5, "≤ 1.5×", "lower"))
    # The multipart flow has no target of its own: it is what the app flow is compared with.
    figures.append(
        Figure("multipart flow: bytes sent / photo bytes", web_ratio, "×", web_ratio, "comparison", "lower")
    )
    print(
        table(
            f"Flaky network: {args.complaints} complaints × 3 × 4 MiB, cuts U(1, 16) MiB, seed {args.seed}",
            figures,
        )
    )
    save(
        "bench_app_flaky",
        figures,
        {
            "complaints": args.complaints,
            "seed": args.seed,
            "photo_bytes_total": photo_total,
            "flows": {
                name: {
                    "requests": o.attempts,
                    "cut_requests": o.transport_errors,
                    "connections": s.connections,
                    "upstream_bytes": s.upstream_bytes,
                    "seconds": o.seconds,
                    "complaints": total,
                    "exact": exact,
                }
                for name, (o, s, total, exact) in results.items()
            },
            "load": os.getloadavg(),
            "machine_line": machine(),
        },
    )


if __name__ == "__main__":
    main()
