"""Public disclosure tasks: render again the QR pages and public profiles a change dropped from the store."""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache

from fastapi import FastAPI

from backend.public.refresh import REFRESH_BATCH, refresh
from backend.public.store import get_store
from workers.celery_app import task as _task

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _app() -> FastAPI:
    # The worker renders through the application itself, built once per worker process.
    from backend.main import create_app

    return create_app()


@_task(name="gongping.public.refresh")
def refresh_public_pages() -> int:
    """Render up to a batch of dropped public answers again (every few seconds, from beat)."""
    store = get_store()
    if store is None:
        return 0
    rendered = asyncio.run(refresh(_app(), store, limit=REFRESH_BATCH))
    if rendered:
        log.info("public store: %d answers rendered again after changes", rendered)
    return rendered
