"""The relay's connection to the broker: a send-only Celery client configured like the workers' app.

The relay is the outbox's publisher and runs in the API's CLI as well as in the workers, so the broker settings
it shares with ``workers/celery_app.py`` live here (the backend never imports ``workers``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery

from backend.config import Settings, get_settings

#: The queue every task goes to unless routed elsewhere.
DEFAULT_QUEUE = "gongping"


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options; the embedded broker is kombu's filesystem transport in a folder under var/."""
    if settings.uses_embedded_broker:
        queue = settings.broker_dir / "queue"
        processed = settings.broker_dir / "processed"
        control = settings.broker_dir / "control"
        for folder in (queue, processed, control):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
        }
    # Redis: a message not acknowledged within this time is redelivered (must exceed the longest task).
    options: dict[str, Any] = {"visibility_timeout": settings.broker_visibility_timeout}
    if settings.broker_visibility_timeout < 60:
        # A short timeout (fault tests) needs the sweep for abandoned messages to run every second, not 100 s.
        options |= {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    return options


def client_conf(settings: Settings) -> dict[str, Any]:
    """The settings a message's sender and its consumer must agree on (transport, serializer, queue)."""
    return {
        "broker_transport_options": broker_transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_default_queue": DEFAULT_QUEUE,
    }


@lru_cache(maxsize=1)
def publisher() -> Celery:
    """The process's send-only Celery client for the configured broker."""
    settings = get_settings()
    app = Celery("gongping", broker=settings.broker_url)
    app.conf.update(client_conf(settings))
    return app


def celery_sender(name: str, args: list[Any], task_id: str) -> None:
    """Publish one task through the configured broker."""
    publisher().send_task(name, args=args, task_id=task_id, retry=True, retry_policy={"max_retries": 2})
