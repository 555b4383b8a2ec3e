"""The push channel's life in a worker: checked at start-up, built after the fork, released at exit."""

from __future__ import annotations

from typing import Any

from celery.signals import celeryd_after_setup, worker_process_init, worker_process_shutdown

from backend.notices.channel import announce, close_push_channel, push_channel


@celeryd_after_setup.connect
def _announce(**_kwargs: Any) -> None:
    """Say at start-up (logging is set up, nothing consumed yet) whether push is on; bad credentials stop it."""
    announce()


@worker_process_init.connect
def _build_after_fork(**_kwargs: Any) -> None:
    """Prefork children build their channel as they start, not on the first notice."""
    push_channel()


@worker_process_shutdown.connect
def _close_on_exit(**_kwargs: Any) -> None:
    """Release the firebase App when a child exits."""
    close_push_channel()
