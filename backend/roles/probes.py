"""Liveness and readiness of the roles without an HTTP API (worker, beat, relay), for systemd, Kubernetes or a
load balancer's checks: ``GET /livez`` and ``GET /readyz`` on a port of their own, from a daemon thread.

- ``/livez``: the role's own loop has moved within ``health_stale_seconds`` (a heartbeat it beats each turn).
  503 means restart the process: it is stuck.
- ``/readyz``: the role can do its work now (database and broker reachable, not stopping). 503 means wait, not
  restart: a database outage makes every role unready at once.

Both answer JSON ``{"role": …, "status": "ok"|"down", …}``; the role adds what it knows (the beat: whether it
holds the scheduler lease).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from backend.health.router import check_broker, check_database

log = logging.getLogger(__name__)

#: A readiness check: whether ready, and details for the body.
ReadyCheck = Callable[[], tuple[bool, dict[str, Any]]]


class Heartbeat:
    """The instant a role's loop last turned (monotonic clock)."""

    def __init__(self) -> None:
        self._at = time.monotonic()

    def beat(self) -> None:
        """The loop turned."""
        self._at = time.monotonic()

    def age(self) -> float:
        """Seconds since the loop last turned."""
        return time.monotonic() - self._at


def dependencies_ready() -> tuple[bool, dict[str, Any]]:
    """Database and broker reachable (what every background role needs to work)."""
    database, broker = check_database(), check_broker()
    ok = database.status == "ok" and broker.status == "ok"
    return ok, {"database": database.status, "broker": broker.status}


class Probes:
    """One role's liveness and readiness."""

    def __init__(
        self,
        role: str,
        *,
        heartbeat: Heartbeat,
        stale_after: float,
        ready: ReadyCheck = dependencies_ready,
        details: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.role = role
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.ready_check = ready
        self.details = details
        self.started = False
        self.stopping = False

    def live(self) -> tuple[bool, dict[str, Any]]:
        """Whether the role's loop has turned recently."""
        age = self.heartbeat.age()
        return age <= self.stale_after, {"loop_age_s": round(age, 1), **self.details()}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether the role can take work now."""
        if self.stopping:
            return False, {"stopping": True, **self.details()}
        if not self.started:
            return False, {"starting": True, **self.details()}
        ok, body = self.ready_check()
        return ok, {**body, **self.details()}

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        """Answer /livez and /readyz on ``host:port`` from a daemon thread; returns the server (to shut down)."""
        probes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in ("/livez", "/readyz"):
                    self._answer(404, {"error": {"code": "not_found", "message": "/livez or /readyz"}})
                    return
                try:
                    ok, body = probes.live() if path == "/livez" else probes.ready()
                except Exception as exc:  # a probe must answer, whatever broke
                    ok, body = False, {"detail": type(exc).__name__}
                status = {"role": probes.role, "status": "ok" if ok else "down", **body}
                self._answer(200 if ok else 503, status)

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, ensure_ascii=False, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # probes every few seconds would drown the role's log

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name=f"{self.role}-probes", daemon=True).start()
        log.info("%s: liveness and readiness on http://%s:%s/livez and /readyz", self.role, host, port)
        return server


def serve_configured(probes: Probes) -> ThreadingHTTPServer | None:
    """Serve ``probes`` on the configured health port, if one is set."""
    from backend.config import get_settings

    settings = get_settings()
    if settings.health_port is None:
        return None
    return probes.serve(settings.health_host, settings.health_port)
