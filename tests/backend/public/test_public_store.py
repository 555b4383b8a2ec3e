"""The shared store of rendered public answers (backend.public.store), against a real Redis: rendered once for
every process, invalidated by every committed change to what the page shows, never stale after a racing render,
and never a failure when Redis is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.audit.service import SYSTEM
from backend.config import Settings, get_settings
from backend.db import get_session
from backend.main import create_app
from backend.operators import service as operator_service
from backend.operators.schemas import SelfCommitmentCreate
from backend.public import service as public_service
from backend.public import store as public_store
from backend.public.refresh import refresh
from backend.public.store import PublicStore, StoredAnswer, next_state_change, page_key, seconds_until
from backend.qr import service as qr_service
from backend.records import rating
from tests.backend.public.conftest import Market
from tests.factories import make_instrument, make_record


@dataclass
class Stored:
    """Apps ("processes") sharing one store, the test's Redis, and a count of QR pages rendered."""

    settings: Settings
    redis: redis.Redis
    renders: list[str]
    session: Session

    def app(self) -> TestClient:
        """Another process: its own app and micro-cache (off), the same store and transaction."""
        app = create_app(self.settings)

        def _session() -> Iterator[Session]:
            yield self.session
            self.session.commit()

        app.dependency_overrides[get_session] = _session
        return TestClient(app)

    def keys(self) -> set[str]:
        """The stored answers' keys."""
        return {k.decode() for k in self.redis.scan_iter("gp:pub:p:*")}


@pytest.fixture
def stored(redis_url: str, session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stored]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    # The session hook reads the process's settings: the store is on for this test only.
    monkeypatch.setattr(get_settings(), "public_store_url", redis_url)
    settings = get_settings().model_copy(update={"public_cache_seconds": 0, "public_store_url": redis_url})
    renders: list[str] = []
    real = public_service.qr_page

    def counting(session: Session, token: str, locale: str) -> public_service.RenderedPage:
        renders.append(token)
        return real(session, token, locale)  # type: ignore[arg-type]

    monkeypatch.setattr(public_service, "qr_page", counting)
    try:
        yield Stored(settings, client, renders, session)
    finally:
        public_store.forget_pending()
        client.flushdb()
        client.close()


def test_a_page_is_rendered_once_and_then_served_to_every_process_from_the_store(
    stored: Stored, market: Market
) -> None:
    first = stored.app().get(f"/q/{market.stall_token}")
    second = stored.app().get(f"/q/{market.stall_token}")  # another process, no micro-cache
    assert first.status_code == second.status_code == 200
    assert second.text == first.text and len(stored.renders) == 1
    assert "age" not in first.headers and int(second.headers["age"]) >= 0
    # The stored answer keeps the page's own headers; the request id is the new request's.
    assert second.headers["content-security-policy"] == first.headers["content-security-policy"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    # One entry per language served, each under the operator it shows.
    stored.app().get(f"/q/{market.stall_token}", headers={"Accept-Language": "en"})
    assert len(stored.renders) == 2 and len(stored.keys()) == 2
    index = {k.decode() for k in stored.redis.smembers(f"gp:pub:o:{market.market.id}")}
    assert index == stored.keys()


def test_the_profile_apis_are_stored_too(stored: Stored, market: Market) -> None:
    app = stored.app()
    profile = [app.get(f"/api/v1/public/operators/{market.market.id}") for _ in range(2)]
    scan = [app.get(f"/api/v1/public/qr/{market.stall_token}") for _ in range(2)]
    assert [r.status_code for r in (*profile, *scan)] == [200] * 4
    assert "age" in profile[1].headers and "age" in scan[1].headers
    assert profile[1].json() == profile[0].json() and scan[1].json() == scan[0].json()
    assert len(stored.keys()) == 2


def test_warnings_errors_and_signed_in_requests_are_never_stored(stored: Stored, market: Market) -> None:
    app = stored.app()
    assert app.get("/q/forged-code").status_code == 404
    assert app.get("/api/v1/public/operators/999999999").status_code == 404
    assert app.get(f"/q/{market.stall_token}", headers={"Authorization": "Bearer x"}).status_code == 200
    assert stored.keys() == set()


def _renders_again(stored: Stored, market: Market, change: str) -> str:
    """Serve the page from the store, make one change, commit it, and return the page served next."""
    app = stored.app()
    token = market.stall_token
    before = app.get(f"/q/{token}").text
    assert app.get(f"/q/{token}").text == before and len(stored.renders) == 1
    session = stored.session
    if change == "operator renamed":
        market.market.name = "改名后的西溪市场"
        session.add(market.market)
    elif change == "stall renamed":
        market.stall.name = "新摊名"
        session.add(market.stall)
    elif change == "instrument verified and failed":
        market.scale.last_passed = False
        session.add(market.scale)
    elif change == "instrument added":
        make_instrument(session, market.market, stall=market.stall, verified_on=date.today())
    elif change == "commitment signed":
        operator_service.sign_commitment(
            session,
            operator=market.market,
            data=SelfCommitmentCreate(text_version="2017-1", signer="张三丰"),
            actor=SYSTEM,
        )
    elif change == "record made":
        make_record(session, market.market)
    session.commit()
    assert stored.keys() == set(), "the commit dropped the operator's stored pages"
    after = app.get(f"/q/{token}").text
    assert len(stored.renders) == 2
    return after


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ("operator renamed", "改名后的西溪市场"),
        ("stall renamed", "新摊名"),
        ("instrument verified and failed", None),
        ("instrument added", None),
        ("commitment signed", None),
        ("record made", None),
    ],
)
def test_every_committed_change_to_what_the_page_shows_drops_it(
    stored: Stored, market: Market, change: str, shown: str | None
) -> None:
    after = _renders_again(stored, market, change)
    if shown is not None:
        assert shown in after


def test_a_reprinted_code_shows_revoked_at_once(stored: Stored, market: Market) -> None:
    app = stored.app()
    old = market.stall_token
    assert app.get(f"/q/{old}").status_code == 200
    assert app.get(f"/q/{old}").status_code == 200 and len(stored.renders) == 1
    qr_service.reprint(stored.session, subject=market.stall, actor=SYSTEM)
    stored.session.commit()
    assert app.get(f"/q/{old}").status_code == 410


def test_a_rating_written_by_core_statements_drops_the_page(stored: Stored, market: Market) -> None:
    app = stored.app()
    operator_id = market.market.id or 0
    make_record(stored.session, market.market, "instrument_unverified")
    stored.session.commit()
    app.get(f"/api/v1/public/operators/{operator_id}")
    assert len(stored.keys()) == 1
    # The rating engine writes operator_rating by an upsert statement, which no ORM hook sees.
    report = rating.rerate_operator(stored.session, operator_id)
    stored.session.commit()
    assert report.written == 1 and stored.keys() == set()


def test_a_rolled_back_change_keeps_the_stored_page(stored: Stored, market: Market) -> None:
    app = stored.app()
    app.get(f"/q/{market.stall_token}")
    market.market.name = "不会保存的名字"
    stored.session.add(market.market)
    stored.session.flush()
    stored.session.rollback()
    assert len(stored.keys()) == 1


def test_a_render_that_read_before_a_change_is_not_stored(redis_url: str) -> None:
    store = PublicStore(redis_url, seconds=600)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    answer = StoredAnswer([(b"content-type", b"text/html")], b"<p>old</p>", 0.0)
    key = page_key("/q/race", b"", "zh-CN")

    async def scenario() -> tuple[bool, bool]:
        read_at = await store.clock()  # a miss: the renderer reads the counter, then the database
        assert read_at is not None
        store.invalidate([7])  # a change to operator 7 commits meanwhile
        late = await store.put(key, answer, [7, 8], read_at=read_at, seconds=600)
        fresh_read = await store.clock()
        assert fresh_read is not None and fresh_read > read_at
        fresh = await store.put(key, answer, [7, 8], read_at=fresh_read, seconds=600)
        return late, fresh

    try:
        late, fresh = asyncio.run(scenario())
        assert late is False and fresh is True
        assert client.get(key) is not None and 0 < client.ttl(key) <= 600
        store.invalidate([8])  # either operator's change drops the answer
        assert client.get(key) is None
    finally:
        client.flushdb()
        client.close()
        store.close()


def test_pages_expire_when_an_instrument_turns_due_or_overdue(stored: Stored, market: Market) -> None:
    today = date(2026, 12, 2)
    due = get_settings().verification_due_days
    assert next_state_change(
        [(True, today + timedelta(days=due + 5))], today=today, due_days=due
    ) == today + (timedelta(days=5))
    assert next_state_change([(True, today + timedelta(days=3))], today=today, due_days=due) == today + (
        timedelta(days=4)
    )
    assert (
        next_state_change(
            [(True, today - timedelta(days=1)), (False, today), (True, None)], today=today, due_days=due
        )
        is None
    )
    assert seconds_until(date(2026, 12, 3), now=datetime(2026, 12, 2, 23, 0)) == 3600
    assert seconds_until(None) is None
    # A scale valid until tomorrow: the stored page must be gone by the day after (it will read "overdue").
    market.scale.valid_until = date.today() + timedelta(days=1)
    stored.session.add(market.scale)
    stored.session.commit()
    stored.app().get(f"/q/{market.stall_token}")
    (key,) = stored.keys()
    assert 0 < stored.redis.ttl(key) <= seconds_until(date.today() + timedelta(days=2)) + 1  # type: ignore[operator]


def test_without_redis_pages_are_rendered_and_nothing_fails(
    session: Session, market: Market, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dead = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    monkeypatch.setattr(get_settings(), "public_store_url", dead)
    app = create_app(get_settings().model_copy(update={"public_cache_seconds": 0, "public_store_url": dead}))

    def _session() -> Iterator[Session]:
        yield session
        session.commit()

    app.dependency_overrides[get_session] = _session
    client = TestClient(app)
    with caplog.at_level("WARNING", logger="backend.public.store"):
        pages = [client.get(f"/q/{market.stall_token}") for _ in range(3)]
    assert [p.status_code for p in pages] == [200, 200, 200]
    # One line per outage, and no connection attempt per scan while it lasts.
    assert sum("public store unavailable" in r.getMessage() for r in caplog.records) == 1
    # A commit whose invalidation cannot reach Redis still commits; the invalidation waits to be retried.
    market.market.name = "断网时改的名字"
    session.add(market.market)
    session.commit()
    assert "断网时改的名字" in client.get(f"/q/{market.stall_token}").text
    assert public_store.pending_invalidations() >= 1
    public_store.forget_pending()


def test_an_invalidation_redis_missed_is_retried_until_it_lands(
    stored: Stored, market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = stored.app()
    app.get(f"/q/{market.stall_token}")
    assert len(stored.keys()) == 1
    # This process loses Redis (a partition): the commit goes through, its invalidation is kept.
    monkeypatch.setattr(get_settings(), "public_store_url", "redis://127.0.0.1:9/0")
    monkeypatch.setattr(public_store, "RETRY_SECONDS", 0.05)
    market.market.name = "分区期间改的名字"
    stored.session.add(market.market)
    stored.session.commit()
    assert public_store.pending_invalidations() == 1 and len(stored.keys()) == 1
    # Redis is reachable again: the retry timer drops the page other processes were still serving.
    monkeypatch.setattr(get_settings(), "public_store_url", stored.settings.public_store_url)
    deadline = time.monotonic() + 5
    while stored.keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored.keys() == set() and public_store.pending_invalidations() == 0
    assert "分区期间改的名字" in app.get(f"/q/{market.stall_token}").text


def test_touch_is_a_no_op_without_a_store(session: Session) -> None:
    public_store.touch(session, [1, 2])
    assert "gongping_public_dirty" not in session.info


def test_pages_dropped_by_a_change_are_rendered_again_for_the_next_scan(
    stored: Stored, market: Market
) -> None:
    app = stored.app()
    token = market.stall_token
    app.get(f"/q/{token}")
    app.get(f"/q/{token}?lang=en")
    app.get(f"/api/v1/public/operators/{market.market.id}")
    assert len(stored.keys()) == 3 and len(stored.renders) == 2
    market.market.name = "刷新后的市场名"
    stored.session.add(market.market)
    stored.session.commit()
    assert stored.keys() == set() and stored.redis.llen(public_store.REFRESH_KEY) == 3
    store = public_store.get_store(stored.settings)
    assert store is not None
    rendered = asyncio.run(refresh(app.app, store))  # what the worker's beat task does
    assert rendered == 3 and len(stored.keys()) == 3 and stored.redis.llen(public_store.REFRESH_KEY) == 0
    # The next scan is served from the store, and shows the change.
    page = app.get(f"/q/{token}")
    assert "age" in page.headers and "刷新后的市场名" in page.text and len(stored.renders) == 4
    # A code revoked before the worker came round is not stored again: its scan shows the warning.
    qr_service.reprint(stored.session, subject=market.stall, actor=SYSTEM)
    stored.session.commit()
    assert asyncio.run(refresh(app.app, store)) == 1  # the profile API only; the old code answers 410
    assert app.get(f"/q/{token}").status_code == 410


def test_pages_are_stored_compressed_and_served_plain_to_clients_without_gzip(
    stored: Stored, market: Market
) -> None:
    app = stored.app()
    rendered = app.get(f"/q/{market.stall_token}", headers={"Accept-Encoding": "identity"})
    (key,) = stored.keys()
    raw = stored.redis.get(key)
    assert raw is not None
    answer = StoredAnswer.decode(raw)
    assert answer.gzipped and len(answer.body) < len(rendered.content) / 2
    plain = stored.app().get(f"/q/{market.stall_token}", headers={"Accept-Encoding": "identity"})
    assert (
        "content-encoding" not in plain.headers
        and plain.content == rendered.content
        and "age" in plain.headers
    )
    packed = stored.app().get(f"/q/{market.stall_token}", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.content == rendered.content
    assert len(stored.renders) == 1
