"""The FastAPI application factory: middleware, error handlers and router wiring."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from backend.app_config.router import router as app_config_router
from backend.app_config.versions import AppVersionMiddleware
from backend.auth.body_gate import gate_routes
from backend.auth.router import router as auth_router
from backend.cases.router import router as cases_router
from backend.common.etag import BodyEtagMiddleware
from backend.complaints.router import router as complaints_router
from backend.complaints.schemas import ComplaintSubmission
from backend.config import Settings, get_settings
from backend.contract import TITLE, install_contract, install_redoc, operation_id
from backend.errors import AppError, install_error_handlers
from backend.exchange.router import router as exchange_router
from backend.health.router import router as health_router
from backend.hooks import install as install_hooks
from backend.instruments.router import router as instruments_router
from backend.intake.router import operators_router as intake_operators_router
from backend.intake.router import router as intake_router
from backend.jurisdictions.router import router as jurisdictions_router
from backend.media.storage import MediaUnavailable, storage_unavailable
from backend.middleware import BodyLimitMiddleware, ConcurrencyLimitMiddleware, SecurityHeadersMiddleware
from backend.notices.router import router as inbox_router
from backend.notices.sms.router import router as sms_router
from backend.open311.router import router as open311_router
from backend.operators.router import router as operators_router
from backend.public.cache import PublicCacheMiddleware
from backend.public.router import router as public_router
from backend.public.store import get_store
from backend.publication.router import router as publication_router
from backend.qr.router import router as qr_router
from backend.records.router import router as records_router
from backend.supervision.router import router as supervision_router
from backend.uploads.router import router as uploads_router
from backend.uploads.schemas import ComplaintJsonSubmission
from backend.workbench.reviews import router as workbench_reviews_router
from backend.workbench.router import router as workbench_router

DESCRIPTION = """
公平（Gongping）：服务业诚信计量监督管理平台后端。依据《服务业诚信计量监督管理制度建设指南》（国质检量函〔2017〕566号）。

Gongping: the backend for service-industry integrity metrology supervision. Errors always have the shape
`{"error": {"code", "message", "details"}}`; messages follow `Accept-Language` (zh-CN by default) or `?lang=en`.
"""


logger = logging.getLogger("gongping")
#: Where the documentation pages' scripts and styles are served from.
DOCS_ASSETS_URL = "/docs-assets"


async def _media_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The media store is down (object store outage, timeout, throttling, full disk): 503 with Retry-After."""
    logger.warning("media store unavailable: %s", exc)
    handler = request.app.exception_handlers[AppError]
    response: JSONResponse = await handler(request, storage_unavailable())
    return response


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application."""
    settings = settings or get_settings()
    install_hooks()
    for warning in settings.startup_warnings():
        logger.warning(warning)
    # /docs and /redoc with Swagger UI and ReDoc served from the installed fastapi-offline package, never a
    # CDN: on a bureau's intranet the pages still work.
    app = FastAPIOffline(
        title=TITLE,
        version="0.1.0",
        description=DESCRIPTION,
        generate_unique_id_function=operation_id,
        static_url=DOCS_ASSETS_URL,
        redoc_url=None,
    )
    install_redoc(app, "/redoc", DOCS_ASSETS_URL)
    install_error_handlers(app)
    app.add_exception_handler(MediaUnavailable, _media_unavailable)
    # Routes match in order, each request trying every route before its own (a few microseconds each): the
    # public pages (QR scans are most of the traffic) come first, then what the app calls on every start and
    # poll (config, me, my complaints, the inbox). No route's path is also another's
    # (tests/backend/test_route_order.py), so the order decides only how fast a route is found.
    for router in (
        public_router,
        health_router,
        app_config_router,
        auth_router,
        complaints_router,
        inbox_router,
        jurisdictions_router,
        operators_router,
        instruments_router,
        intake_router,
        intake_operators_router,
        qr_router,
        uploads_router,
        cases_router,
        records_router,
        publication_router,
        supervision_router,
        sms_router,
        open311_router,
        exchange_router,
        workbench_router,
        workbench_reviews_router,
    ):
        app.include_router(router)
    # An account route's body is read only after its account check (backend/auth/body_gate.py).
    gate_routes(app)
    # The document app teams generate clients from (ids, tags, errors, component names): backend/contract.py.
    # ComplaintSubmission is the JSON part of a multipart body, which FastAPI cannot see by itself.
    install_contract(app, extra_models=(ComplaintSubmission, ComplaintJsonSubmission))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Accept-Language"],
            max_age=600,
        )
    app.add_middleware(
        BodyLimitMiddleware, json_limit=settings.max_json_body_bytes, upload_limit=settings.max_upload_bytes
    )
    # Around everything that may take a database connection: admissions never exceed the pool's steady
    # connections (or anyio's 40 worker threads). Overflow connections are closed as soon as they are given
    # back, so admitting up to the overflow opened a PostgreSQL backend for one request in seven under load
    # (a fork and a cold catalogue cache each: a quarter of the rendered page's throughput); the overflow
    # stays for a request's second connection and for work after the response.
    app.add_middleware(ConcurrencyLimitMiddleware, limit=min(settings.db_pool_size, 36))
    # An outdated app is answered before it queues for the database.
    app.add_middleware(AppVersionMiddleware)
    # Outside the admission limit: a scan answered from memory or the store never queues behind requests
    # waiting for the database. Inside the security headers: a cached answer still gets them, and its own
    # request id.
    app.add_middleware(
        PublicCacheMiddleware,
        ttl_seconds=settings.public_cache_seconds,
        max_bytes=settings.public_cache_max_bytes,
        store=get_store(settings),
    )
    # Outside the public cache: its answers, served without rendering, get their validator here.
    app.add_middleware(
        BodyEtagMiddleware,
        prefixes=("/api/v1/public/operators/", "/api/v1/public/qr/", "/api/v1/app/config"),
        private_paths=frozenset({"/api/v1/me"}),
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app
