"""Celery beat under the scheduler lease: start beat on several nodes, one sends the periodic tasks.

``gongping beat`` runs beat with this scheduler. Each tick the active one renews its lease (every third of
``beat_lease_seconds``); the others try to take the lease each third and send nothing until they hold it, so a
``kill -9`` of the active beat costs at most one lease period of schedule. SIGTERM releases the lease at once.
On takeover, every periodic task whose time passed while this beat waited is sent once (they are idempotent
sweeps), so nothing due during the handover is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any

from celery.beat import PersistentScheduler

from backend.config import get_settings
from backend.db import session_scope
from backend.roles.lease import BEAT, claim, release
from backend.roles.probes import Heartbeat, Probes, serve_configured

log = logging.getLogger(__name__)


class LeasedScheduler(PersistentScheduler):  # type: ignore[misc]  # Celery is untyped
    """Sends the schedule only while holding the ``beat`` lease in the database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self.lease_ttl = timedelta(seconds=settings.beat_lease_seconds)
        self.renew_every = settings.beat_lease_seconds / 3
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.holding = False
        self.term = 0
        self.seen_holder: str | None = None
        self.claimed_at = float("-inf")
        self.released = False
        self.heartbeat = Heartbeat()
        self.probes = Probes(
            "beat",
            heartbeat=self.heartbeat,
            stale_after=max(settings.health_stale_seconds, 3 * self.renew_every),
            details=self._details,
        )
        self.health_server: Any = None
        super().__init__(*args, **kwargs)

    def _details(self) -> dict[str, Any]:
        return {
            "lease": "held" if self.holding else "standby",
            "holder": self.holder if self.holding else self.seen_holder,
            "term": self.term,
        }

    def _claim(self) -> bool:
        """Renew or take the lease (at most every third of its life); whether this beat holds it now."""
        now = time.monotonic()
        if self.holding and now - self.claimed_at < self.renew_every:
            return True
        try:
            with session_scope() as session:
                state = claim(session, BEAT, self.holder, self.lease_ttl)
        except Exception as exc:
            # Cannot renew: stop sending now; the lease runs out in the database and someone takes over.
            if self.holding:
                log.error("beat %s: cannot renew the scheduler lease (%s); standing by", self.holder, exc)
            self.holding = False
            return False
        if state.held:
            self.claimed_at = now
            if not self.holding:
                log.warning(
                    "beat %s 取得调度租约（第 %s 任）/ took the scheduler lease (term %s)",
                    self.holder,
                    state.term,
                    state.term,
                )
        elif self.holding or state.holder != self.seen_holder:
            log.warning(
                "beat %s 待命：调度租约由 %s 持有至 %s / standing by: the lease is held by %s until %s",
                self.holder,
                state.holder,
                state.expires_at.isoformat(),
                state.holder,
                state.expires_at.isoformat(),
            )
        self.holding, self.term, self.seen_holder = state.held, state.term, state.holder
        return state.held

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due if this beat holds the lease; sleep at most until the lease needs renewing."""
        self.heartbeat.beat()
        if self.health_server is None and not self.released:
            # On the first tick, not in __init__: beat also builds a scheduler only to print its banner.
            self.health_server = serve_configured(self.probes)
        held = self._claim()
        # Ready once it knows whether it is the active beat or the standby.
        self.probes.started = True
        if not held:
            return self.renew_every
        return float(min(super().tick(*args, **kwargs), self.renew_every))

    def close(self) -> None:
        """Save the schedule and give the lease up (SIGTERM, Ctrl-C): a waiting beat takes over at once."""
        self.probes.stopping = True
        super().close()
        if self.health_server is not None:
            self.health_server.shutdown()
            self.health_server = None
        if self.holding and not self.released:
            self.released = True
            self.holding = False
            try:
                with session_scope() as session:
                    release(session, BEAT, self.holder)
                log.warning("beat %s 已释放调度租约 / released the scheduler lease", self.holder)
            except Exception as exc:
                log.error("beat %s: could not release the lease (%s); it expires by itself", self.holder, exc)
