"""Marks outbox work finished, so the relay's redrive sweep knows which events still need their tasks.

A task published by the relay has a message id starting ``outbox-`` and takes the event id (or, for the
notification batch, a list of ids) as its first argument. When it succeeds (after any retries) its completion
is stored; an event with every task done is handled. Nothing else is tracked.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_success

from backend.db import session_scope
from backend.outbox.relay import DISPATCH_BATCH_TASK, DISPATCH_TASK, tasks_per_topic
from backend.outbox.service import mark_tasks_done

log = logging.getLogger(__name__)


def event_ids_of(args: Any) -> list[int]:
    """The outbox event ids a relay-published task was called with."""
    if not args:
        return []
    first = args[0]
    if isinstance(first, list):
        return [int(i) for i in first]
    return [int(first)]


@task_success.connect
def _record_success(sender: Any = None, **_kwargs: Any) -> None:
    request = getattr(sender, "request", None)
    task_id = str(getattr(request, "id", "") or "")
    if not task_id.startswith("outbox-"):
        return
    name = DISPATCH_TASK if sender.name == DISPATCH_BATCH_TASK else str(sender.name)
    ids = event_ids_of(getattr(request, "args", None))
    try:
        with session_scope() as session:
            mark_tasks_done(session, name, ids, tasks_per_topic())
    except Exception:
        # The work itself is done and kept; at worst the redrive sweep runs an idempotent task again.
        log.exception("could not record completion of %s for events %s", name, ids)
