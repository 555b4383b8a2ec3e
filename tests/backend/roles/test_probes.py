"""/livez follows the role's heartbeat; /readyz its dependencies and whether it is stopping."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from backend.roles.probes import Heartbeat, Probes


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_liveness_and_readiness_answer_on_their_own_port() -> None:
    heartbeat = Heartbeat()
    ready = [True]

    def check() -> tuple[bool, dict[str, Any]]:
        return ready[0], {"database": "ok" if ready[0] else "down"}

    probes = Probes("relay", heartbeat=heartbeat, stale_after=5, ready=check, details=lambda: {"x": 1})
    port = _port()
    server = probes.serve("127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    try:
        live = httpx.get(f"{base}/livez")
        assert live.status_code == 200 and live.json()["role"] == "relay" and live.json()["x"] == 1
        starting = httpx.get(f"{base}/readyz")
        assert starting.status_code == 503 and starting.json()["starting"] is True
        probes.started = True
        assert httpx.get(f"{base}/readyz").json() == {
            "role": "relay",
            "status": "ok",
            "database": "ok",
            "x": 1,
        }
        ready[0] = False
        assert httpx.get(f"{base}/readyz").status_code == 503
        ready[0] = True
        heartbeat._at -= 10  # the loop stopped turning 10 s ago
        stale = httpx.get(f"{base}/livez")
        assert stale.status_code == 503 and stale.json()["status"] == "down"
        heartbeat.beat()
        assert httpx.get(f"{base}/livez").status_code == 200
        probes.stopping = True
        assert httpx.get(f"{base}/readyz").json()["stopping"] is True
        missing = httpx.get(f"{base}/metrics")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    finally:
        server.shutdown()
        server.server_close()
