"""Render again the public answers a change dropped (``store.REFRESH_KEY``), so that the next scan of a code
that people were scanning is served from the store too, not rendered while the scanner waits.

The answers are rendered through the application itself, exactly as a scan would be (same routes, headers and
store write, including its guard against racing changes), as anonymous requests in the language each was
served in.
"""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp

from backend.public.store import PublicStore

#: Answers rendered per run: ~3 ms each, a few seconds of work, far inside the task time limit.
REFRESH_BATCH = 2000


async def refresh(app: ASGIApp, store: PublicStore, *, limit: int = REFRESH_BATCH) -> int:
    """Render up to ``limit`` dropped answers again; returns how many were stored-worthy (200) answers."""
    targets = store.take_refresh(limit)
    rendered = 0
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://refresh.gongping.internal"
        ) as client:
            for locale, target in targets:
                response = await client.get(target, headers={"Accept-Language": locale})
                # A code revoked meanwhile answers 410 and is not stored: nothing more to do for it.
                rendered += response.status_code == 200
    finally:
        await store.aclose()
    return rendered
