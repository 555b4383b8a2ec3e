"""Real Gongping processes for fault tests and benches: start a role with its own port and var/, wait, stop.

Used by ``tests/faults`` (the multi-node test's cluster of two of each role) and by
``bench/bench_multinode.py`` (the same cluster, and one of each role as its anchor). Nothing here knows which
PostgreSQL, Redis or object store the processes use: the caller's environment says.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from backend.config import ROOT

T = TypeVar("T")

GONGPING = str(Path(sys.executable).parent / "gongping")
ROLES = ("api", "worker", "relay", "beat")


def pick_port(preferred: int = 0) -> int:
    """``preferred`` if nothing listens there, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def port_in(first: int, last: int, taken: set[int] | None = None) -> int:
    """The first port in ``first..last`` (inclusive) nothing listens on and not in ``taken`` (which it joins)."""
    taken = taken if taken is not None else set()
    for candidate in range(first, last + 1):
        if candidate in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        taken.add(candidate)
        return candidate
    raise RuntimeError(f"no free port in {first}-{last}")


def stop_process(process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL: an orderly stop that cannot hang a test."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def probe(base_url: str, path: str, timeout: float = 3.0) -> dict[str, Any] | None:
    """The JSON of a health URL (with ``http`` = status), or None if nothing answers."""
    try:
        resp = httpx.get(f"{base_url}{path}", timeout=timeout)
    except httpx.TransportError:
        return None
    body: dict[str, Any] = resp.json()
    body["http"] = resp.status_code
    return body


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class Proc:
    """A started process and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(errors="replace")

    def exited(self) -> bool:
        """Whether it has exited."""
        return self.process.poll() is not None

    def kill9(self) -> None:
        """SIGKILL: no cleanup, no acknowledgement, no rollback by the process itself."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        stop_process(self.process)


def spawn_logged(
    folder: Path, name: str, args: list[str], env: Mapping[str, str], *, new_session: bool = False
) -> Proc:
    """Start ``args`` from the repository root with its output in ``<folder>/<name>-<random>.log``;
    ``new_session`` puts it in a process group of its own (so a test can signal the group, as systemd does)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    return Proc(process, log)


@dataclass
class Node:
    """One process of the cluster: its role, its port and its log."""

    name: str
    role: str
    port: int
    proc: Proc

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def probe(self, path: str) -> dict[str, Any] | None:
        """The JSON of a health URL (with ``http`` = status), or None if it does not answer."""
        return probe(self.base_url, path)


#: How a cluster starts a process: (name, argv, environment added to the caller's) -> Proc.
Spawn = Callable[[str, list[str], dict[str, str]], Proc]


class Cluster:
    """Gongping role processes (``gongping serve|worker|relay|beat``), each with its own port and its own var/
    under ``folder/nodes/<name>``, all with the environment ``env`` (database, broker, object store...)."""

    def __init__(
        self,
        folder: Path,
        env: Mapping[str, str],
        *,
        spawn: Spawn | None = None,
        port: Callable[[], int] = pick_port,
        worker_concurrency: int = 1,
    ) -> None:
        self.folder = folder
        self.env = dict(env)
        self.nodes: dict[str, Node] = {}
        self._spawn: Spawn = spawn or (lambda name, args, extra: spawn_logged(folder, name, args, extra))
        self._port = port
        self.worker_concurrency = worker_concurrency

    def start(self, name: str, role: str) -> Node:
        """Start one process of ``role`` named ``name`` (no waiting: see :meth:`wait_ready`)."""
        var = self.folder / "nodes" / name / "var"
        var.mkdir(parents=True, exist_ok=True)
        env = {
            **self.env,
            "GONGPING_BROKER_DIR": str(var / "broker"),
            "GONGPING_GEO_CACHE_DIR": str(var / "geo"),
            # Unused with the object store: a photo found here would be one no other node could read.
            "GONGPING_MEDIA_DIR": str(var / "media"),
        }
        port = self._port()
        concurrency = str(self.worker_concurrency)
        args = {
            "api": [GONGPING, "serve", "--host", "127.0.0.1", "--port", str(port)],
            "worker": [
                GONGPING,
                "worker",
                "--concurrency",
                concurrency,
                "--name",
                name,
                "--health-port",
                str(port),
            ],
            "relay": [GONGPING, "relay", "--health-port", str(port)],
            "beat": [GONGPING, "beat", "--health-port", str(port)],
        }[role]
        node = Node(name, role, port, self._spawn(name, args, env))
        self.nodes[name] = node
        return node

    def start_roles(self, each: int) -> None:
        """``each`` processes of every role, named ``api1``, ``worker1``... (no waiting)."""
        for role in ROLES:
            for i in range(1, each + 1):
                self.start(f"{role}{i}", role)

    def ready(self, node: Node) -> bool:
        """Whether ``node`` answers ready (the API's /healthz, the others' /readyz); fails if it exited."""
        assert not node.proc.exited(), f"{node.name} exited:\n{node.proc.output()[-3000:]}"
        state = node.probe("/healthz" if node.role == "api" else "/readyz")
        return state is not None and state["http"] == 200

    def wait_ready(self, timeout: float = 600.0) -> None:
        """Wait until every node is ready. Several interpreters start at once on a small machine: allow
        minutes, not seconds."""
        deadline = time.monotonic() + timeout
        for node in self.nodes.values():
            left = max(5.0, deadline - time.monotonic())
            wait_for(functools.partial(self.ready, node), f"{node.name} to be ready", timeout=left, every=0.5)

    def of_role(self, role: str) -> list[Node]:
        """The nodes of ``role``, in start order."""
        return [n for n in self.nodes.values() if n.role == role]

    def stop(self) -> None:
        """SIGTERM every node at once, then wait for each (SIGKILL after 20 s)."""
        for node in self.nodes.values():
            if not node.proc.exited():
                node.proc.process.terminate()
        for node in self.nodes.values():
            node.proc.stop()
