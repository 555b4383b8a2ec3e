"""Fault-injection fixtures: a throwaway PostgreSQL cluster and Redis server of our own, and real processes on them.

Nothing here touches the machine's shared PostgreSQL or Redis: the tests stop, kill and restart only what
these fixtures started (``initdb`` in a temporary folder on its own port, ``redis-server`` on its own port),
and every service a test stops is started again in a ``finally``. The tests run only with ``GONGPING_FAULTS=1``
(``make faults``); they need PostgreSQL's server binaries and ``redis-server`` on the machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.config import ROOT, Settings
from backend.outbox import relay
from tests.factories import PASSWORD
from tests.support.processes import Proc, spawn_logged, stop_process, wait_for
from tests.support.processes import pick_port as _port
from workers.celery_app import make_celery

ENABLED = os.environ.get("GONGPING_FAULTS") == "1"
#: Seconds after which Redis hands an unacknowledged message (its worker was killed) to another worker.
VISIBILITY_TIMEOUT_S = 4


# ---- PostgreSQL ---------------------------------------------------------------------------------------------


@dataclass
class PgCluster:
    """A PostgreSQL cluster in a temporary folder, run as the ``postgres`` user on its own port."""

    bin_dir: Path
    data: Path
    port: int
    log: Path

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def is_up(self) -> bool:
        """Whether the server accepts connections."""
        out = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
        )
        return out.returncode == 0

    def start(self) -> None:
        """Start the server (no-op when up) and wait until it accepts connections."""
        if self.is_up():
            return
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        wait_for(self.is_up, "PostgreSQL to accept connections")

    def stop(self) -> None:
        """Stop the server now (fast shutdown: open connections are cut)."""
        if self.is_up():
            self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """Our own PostgreSQL 15+ cluster, initialised in /tmp and removed afterwards."""
    if not ENABLED:
        pytest.skip("fault tests run with GONGPING_FAULTS=1 (make faults)")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.fail("PostgreSQL server binaries (initdb) are needed for the fault tests")
    bin_dir = Path(candidates[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="gongping-faults-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = PgCluster(bin_dir=bin_dir, data=data, port=_port(55432), log=folder / "server.log")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


# ---- Redis --------------------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server of our own on its own port, with an append-only file."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def is_up(self) -> bool:
        """Whether it answers PING."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() == "PONG"

    def start(self) -> None:
        """Start it (no-op when running) and wait for PING."""
        if self.process is not None and self.process.poll() is None:
            return
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        # Persistence on, as a production broker runs: a restart keeps queued and unacknowledged messages.
        # (Without it, messages queued at the moment of a stop are lost and only the sweeps recover them.)
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)]
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.is_up, "redis-server to answer PING", timeout=30)

    def stop(self) -> None:
        """Stop it (SIGTERM: the append-only file is flushed, as in an orderly restart)."""
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Our own redis-server."""
    if not ENABLED:
        pytest.skip("fault tests run with GONGPING_FAULTS=1 (make faults)")
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the fault tests")
    server = RedisServer(port=_port(56379), folder=Path(tempfile.mkdtemp(prefix="gongping-faults-redis-")))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


# ---- the database, processes and data -----------------------------------------------------------------------


@dataclass
class Stack:
    """Our cluster and Redis, a migrated database on them, and the environment our processes run with."""

    pg: PgCluster
    redis: RedisServer
    database_url: str
    engine: Engine
    folder: Path
    media_dir: Path
    env: dict[str, str]
    celery: Celery
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def session(self) -> Session:
        """A session on the fault database (commits are real)."""
        return Session(self.engine, expire_on_commit=False)

    def spawn(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        *,
        new_session: bool = False,
    ) -> Proc:
        """Start one of our processes with its output in ``<folder>/<name>-<random>.log`` (``new_session``: in a
        process group of its own, so a test can signal the whole group as systemd does)."""
        proc = spawn_logged(
            self.folder, name, args, {**self.env, **(extra_env or {})}, new_session=new_session
        )
        self.processes.append(proc.process)
        return proc

    def worker(self, extra_env: dict[str, str] | None = None) -> Proc:
        """``celery worker -P solo`` on the default queue of our Redis."""
        args = [sys.executable, "-m", "celery", "-A", "workers.celery_app:celery_app", "worker", "-P", "solo"]
        args += ["-n", f"fault-{uuid.uuid4().hex[:6]}@%h", "-l", "INFO"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        proc = self.spawn("worker", args, extra_env)
        wait_for(lambda: "ready." in proc.output() or proc.exited(), "the worker to start", timeout=60)
        assert not proc.exited(), proc.output()
        return proc

    def relay_once(self) -> int:
        """One relay pass in this process, publishing to our Redis."""

        def send(name: str, args: list[Any], task_id: str) -> None:
            self.celery.send_task(name, args=args, task_id=task_id)

        with self.session() as s:
            published = relay.relay_once(s, sender=send)
            s.commit()
        return published

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value from the fault database (a short transaction of its own)."""
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="session")
def stack(pg_cluster: PgCluster, redis_server: RedisServer) -> Iterator[Stack]:
    """A migrated database on our cluster and the environment every spawned process shares."""
    folder = Path(tempfile.mkdtemp(prefix="gongping-faults-"))
    name = f"gongping_faults_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_cluster.admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    database_url = pg_cluster.admin_url.rsplit("/", 1)[0] + f"/{name}"
    media = folder / "media"
    env = {
        **os.environ,
        "GONGPING_ENVIRONMENT": "test",
        "GONGPING_DATABASE_URL": database_url,
        "GONGPING_BROKER_URL": redis_server.url,
        "GONGPING_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "GONGPING_MEDIA_DIR": str(media),
        "GONGPING_COMPLAINT_RATE_PER_ACCOUNT": "100000/hour",
        "GONGPING_COMPLAINT_RATE_PER_ADDRESS": "100000/hour",
        "GONGPING_RELAY_POLL_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("GONGPING_FAULT_PAUSE", None)
    subprocess.run(
        [str(Path(sys.executable).parent / "gongping"), "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    engine = create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://", 1), pool_pre_ping=True
    )
    settings = Settings(broker_url=redis_server.url, broker_visibility_timeout=VISIBILITY_TIMEOUT_S)
    built = Stack(
        pg=pg_cluster,
        redis=redis_server,
        database_url=database_url,
        engine=engine,
        folder=folder,
        media_dir=media,
        env=env,
        celery=make_celery(settings),
    )
    try:
        yield built
    finally:
        for process in built.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        built.celery.close()
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class ApiServer:
    """uvicorn serving the app on the fault database."""

    proc: Proc
    base_url: str

    def client(self) -> httpx.Client:
        """An HTTP client for it."""
        return httpx.Client(base_url=self.base_url, timeout=30)


@pytest.fixture(scope="session")
def api_server(stack: Stack) -> Iterator[ApiServer]:
    """One uvicorn process (one worker) on our cluster: the same process is kept across faults."""
    port = _port(0)
    proc = stack.spawn(
        "uvicorn",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "backend.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert not proc.exited(), proc.output()
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "uvicorn to serve /healthz", timeout=60)
    try:
        yield ApiServer(proc, base)
    finally:
        proc.stop()


def api_login(client: httpx.Client, username: str) -> dict[str, str]:
    """Bearer headers for ``username`` (the factories' password)."""
    resp = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}
