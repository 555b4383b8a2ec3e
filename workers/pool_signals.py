"""Pool processes leave SIGTERM to the worker's main process, which shuts down warm.

A SIGTERM sent to the whole process group (systemd's default KillMode, ``kill -TERM -PGID``, ``pkill -f``) used
to reach the prefork pool processes too: Celery resets SIGTERM to its default there, so each died under its
task (WorkerLostError logged), and the main process started new ones while it was shutting down. A pool
process now ignores SIGTERM (SIG_IGN: billiard keeps an ignored signal ignored, and replaces any handler) and
finishes its task; the main process stops taking work and exits once the pool is idle. A cold shutdown
(SIGQUIT, or a second Ctrl-C) kills the pool at once: with late acknowledgement the messages under way go back
to the broker for another worker. A task over its hard time limit is still killed (Celery follows its SIGTERM
with SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from billiard.process import active_children  # type: ignore[import-untyped]
from celery.signals import worker_process_init, worker_shutting_down


@worker_process_init.connect
def _leave_sigterm_to_the_main_process(**_kwargs: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@worker_shutting_down.connect
def _cold_shutdown_kills_the_pool(how: str = "", **_kwargs: Any) -> None:
    if how != "Cold":
        return
    for child in active_children():
        if child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
