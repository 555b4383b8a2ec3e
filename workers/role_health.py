"""The worker role's liveness and readiness (``gongping worker --health-port``; see backend/roles/probes.py).

Liveness is a heartbeat on the worker's own timer, which its main loop services: a main process that stops
turning (stuck, or its loop blocked) goes stale. Readiness: started, not shutting down, database and broker
reachable.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutting_down

from backend.config import get_settings
from backend.roles.probes import Heartbeat, Probes, serve_configured

#: How often the worker's loop beats the heartbeat.
BEAT_EVERY_S = 5.0

heartbeat = Heartbeat()
probes = Probes("worker", heartbeat=heartbeat, stale_after=get_settings().health_stale_seconds)


@worker_ready.connect
def _serve_probes(sender: Any = None, **_kwargs: Any) -> None:
    """Once consuming: beat on the worker's timer and answer the probes (after the pool has forked)."""
    timer = getattr(sender, "timer", None)
    if timer is not None:
        timer.call_repeatedly(BEAT_EVERY_S, heartbeat.beat)
    heartbeat.beat()
    probes.started = True
    serve_configured(probes)


@worker_shutting_down.connect
def _stopping(**_kwargs: Any) -> None:
    """Shutting down: no longer ready (a load balancer or orchestrator stops counting on this worker)."""
    probes.stopping = True
