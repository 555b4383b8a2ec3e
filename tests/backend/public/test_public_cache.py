"""The per-process micro-cache of public answers: what it keeps, for how long, and what it never keeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.config import get_settings
from backend.db import get_session
from backend.main import create_app
from backend.public import cache as cache_module
from backend.public.cache import PublicCacheMiddleware
from tests.backend.public.conftest import Market


def _counting_app(cache_control: str = "public, max-age=60", status: int = 200) -> tuple[FastAPI, list[str]]:
    calls: list[str] = []
    app = FastAPI()

    @app.get("/q/{token}")
    def page(token: str, request: Request) -> PlainTextResponse:
        calls.append(token)
        return PlainTextResponse(
            f"{token} #{len(calls)}", status_code=status, headers={"Cache-Control": cache_control}
        )

    @app.get("/api/v1/public/search")
    def other() -> PlainTextResponse:
        calls.append("search")
        return PlainTextResponse("x", headers={"Cache-Control": "public, max-age=60"})

    return app, calls


def _client(app: FastAPI, ttl: float = 60, max_bytes: int = 1 << 20) -> TestClient:
    app.add_middleware(PublicCacheMiddleware, ttl_seconds=ttl, max_bytes=max_bytes)
    return TestClient(app)


def test_repeated_anonymous_gets_are_served_from_memory() -> None:
    app, calls = _counting_app()
    client = _client(app)
    first = client.get("/q/abc")
    second = client.get("/q/abc")
    assert first.text == second.text == "abc #1" and calls == ["abc"]
    assert "age" not in first.headers and second.headers["age"] == "0"
    assert second.headers["cache-control"] == "public, max-age=60"


def test_language_query_and_credentials_are_part_of_the_key() -> None:
    app, calls = _counting_app()
    client = _client(app)
    client.get("/q/abc")
    client.get("/q/abc", headers={"Accept-Language": "en-US,en;q=0.8"})
    client.get("/q/abc", headers={"Accept-Language": "en"})
    client.get("/q/abc?lang=en")
    client.get("/q/abc", headers={"Authorization": "Bearer x"})
    client.get("/q/abc", headers={"Cookie": "a=b"})
    assert len(calls) == 5  # zh, en (twice: one entry), ?lang=en, and never with credentials


@pytest.mark.parametrize(
    ("cache_control", "status"),
    [("no-store", 200), ("private, max-age=60", 200), ("public", 200), ("public, max-age=60", 404)],
)
def test_only_public_200_answers_with_a_max_age_are_kept(cache_control: str, status: int) -> None:
    app, calls = _counting_app(cache_control, status)
    client = _client(app)
    client.get("/q/abc")
    client.get("/q/abc")
    assert len(calls) == 2


def test_paths_outside_the_list_and_other_methods_pass_through() -> None:
    app, calls = _counting_app()
    client = _client(app)
    client.get("/api/v1/public/search")
    client.get("/api/v1/public/search")
    assert calls == ["search", "search"]


def test_entries_expire_and_the_byte_budget_evicts_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: clock[0])
    app, calls = _counting_app()
    client = _client(app, ttl=30)
    client.get("/q/abc")
    clock[0] += 29
    client.get("/q/abc")
    clock[0] += 2
    client.get("/q/abc")
    assert calls == ["abc", "abc"]  # kept for min(max-age, ttl) = 30 s

    app, calls = _counting_app()
    # Entries of about 1.1 KB (a 900-character token echoed back: too small to compress, and headers counted
    # for both forms) in an 8.8 KB budget: eight fit.
    small = _client(app, max_bytes=8800)
    tokens = [letter * 900 for letter in "abcdefghij"]
    for token in tokens:
        small.get(f"/q/{token}")
    small.get(f"/q/{tokens[-1]}")
    small.get(f"/q/{tokens[0]}")
    assert calls == [*tokens, tokens[0]]


def test_zero_seconds_turns_it_off() -> None:
    app, calls = _counting_app()
    client = _client(app, ttl=0)
    client.get("/q/abc")
    client.get("/q/abc")
    assert len(calls) == 2


@pytest.fixture
def cached_client(session: Session) -> Iterator[TestClient]:
    """The real app with the micro-cache on, sharing the test's transaction."""
    app = create_app(get_settings().model_copy(update={"public_cache_seconds": 60}))

    def _session() -> Iterator[Session]:
        yield session

    app.dependency_overrides[get_session] = _session
    with TestClient(app) as client:
        yield client


def test_the_app_caches_the_page_for_a_minute_but_never_a_warning(
    cached_client: TestClient, session: Session, market: Market
) -> None:
    first = cached_client.get(f"/q/{market.stall_token}")
    market.market.name = "改名后的市场"
    session.commit()
    again = cached_client.get(f"/q/{market.stall_token}")
    assert again.status_code == 200 and again.text == first.text and "age" in again.headers
    # A cached answer still carries the page's policy and the app's headers, with its own request id.
    assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert "改名后的市场" in cached_client.get(f"/q/{market.stall_token}?lang=en").text
    forged = [cached_client.get("/q/forged-code") for _ in range(2)]
    assert [r.status_code for r in forged] == [404, 404] and all("age" not in r.headers for r in forged)
    profile = [cached_client.get(f"/api/v1/public/operators/{market.market.id}") for _ in range(2)]
    assert "age" not in profile[0].headers and "age" in profile[1].headers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"gzip, deflate, br", True),
        (b"br;q=1.0, GZIP;q=0.5", True),
        (b"*", True),
        (b"gzip;q=0", False),
        (b"gzip;q=zero", False),
        (b"identity", False),
        (b"deflate, br", False),
        (b"", False),
    ],
)
def test_accept_encoding_is_read_as_http_says(header: bytes, expected: bool) -> None:
    assert cache_module.accepts_gzip(header) is expected


def test_kept_pages_go_compressed_to_clients_that_take_gzip_and_plain_to_the_rest(
    cached_client: TestClient, market: Market
) -> None:
    path = f"/q/{market.stall_token}"
    first = cached_client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in first.headers  # rendered now: sent as rendered
    assert "Accept-Encoding" in first.headers["vary"]  # so a CDN keeps the two forms apart
    phone = cached_client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert phone.headers["content-encoding"] == "gzip" and phone.text == first.text
    assert int(phone.headers["content-length"]) < len(first.content) / 2
    for refuses in ("identity", "gzip;q=0"):
        plain = cached_client.get(path, headers={"Accept-Encoding": refuses})
        assert "content-encoding" not in plain.headers and plain.content == first.content
        assert int(plain.headers["content-length"]) == len(first.content) and "age" in plain.headers


def test_cached_answers_never_wait_for_a_database_admission() -> None:
    # Starlette lists user middleware outermost first: the cache must sit outside the admission limit (a scan
    # answered from memory or the store does not queue behind requests waiting for a connection), and inside
    # the security headers (which every cached answer still carries).
    from backend.middleware import ConcurrencyLimitMiddleware, SecurityHeadersMiddleware

    order = [m.cls for m in create_app().user_middleware]
    assert order.index(SecurityHeadersMiddleware) < order.index(PublicCacheMiddleware)
    assert order.index(PublicCacheMiddleware) < order.index(ConcurrencyLimitMiddleware)


def test_admissions_stop_at_the_pools_steady_size() -> None:
    # Admitting up to the overflow made SQLAlchemy open and close a PostgreSQL connection for every request
    # past the steady pool (one in seven under load, measured in bench_public): admissions stop at pool_size.
    from backend.middleware import ConcurrencyLimitMiddleware

    base = get_settings()
    for pool, overflow, admitted in ((7, 10, 7), (20, 0, 20), (100, 10, 36)):
        app = create_app(base.model_copy(update={"db_pool_size": pool, "db_max_overflow": overflow}))
        (limit,) = (m.kwargs["limit"] for m in app.user_middleware if m.cls is ConcurrencyLimitMiddleware)
        assert limit == admitted
