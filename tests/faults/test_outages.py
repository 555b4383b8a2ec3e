"""Outages of the broker and the database under a real uvicorn server, relay and worker.

* Redis stopped for 30 s while complaints keep arriving: every POST still answers 201 (the complaint and its
  event commit together in PostgreSQL), the relay backs off, and after Redis is back the backlog drains and
  every complaint is routed exactly once.
* PostgreSQL restarted: while it is down the API answers 503 with ``Retry-After`` (health, a GET and a POST,
  in the one JSON error shape); afterwards the same server process answers again without a restart.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from backend.auth.models import Role
from tests.factories import complaint_json, make_account
from tests.faults.conftest import ApiServer, Stack, api_login, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]

REDIS_DOWN_S = 30


def _devices(stack: Stack, count: int) -> list[str]:
    with stack.session() as s:
        names = [make_account(s, Role.consumer_device).username for _ in range(count)]
        s.commit()
    return names


def _post(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return client.post(
        "/api/v1/complaint-form",
        data={"complaint": json.dumps(complaint_json(), ensure_ascii=False)},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )


def test_redis_down_for_30_s_complaints_are_accepted_and_routed_once_after(
    stack: Stack, api_server: ApiServer
) -> None:
    relay = stack.spawn("relay", [str(Path(sys.executable).parent / "gongping"), "relay"])
    worker = stack.worker()
    answers: list[tuple[float, int, int | None, str]] = []
    stop = threading.Event()
    with api_server.client() as client:
        headers = [api_login(client, name) for name in _devices(stack, 3)]

    def keep_posting() -> None:
        with api_server.client() as c:
            n = 0
            while not stop.is_set():
                resp = _post(c, headers[n % len(headers)])
                ok = resp.status_code == 201
                answers.append(
                    (time.monotonic(), resp.status_code, resp.json()["id"] if ok else None, resp.text[:300])
                )
                n += 1
                time.sleep(0.2)

    poster = threading.Thread(target=keep_posting, name="poster")
    poster.start()
    try:
        time.sleep(3)
        stack.redis.stop()
        down_at = time.monotonic()
        try:
            with api_server.client() as c:
                # Degraded, not down: complaints are still accepted.
                health = c.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "degraded", health.text
            time.sleep(REDIS_DOWN_S)
        finally:
            stack.redis.start()
            up_at = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        poster.join(timeout=60)
    try:
        failures = [a for a in answers if a[1] != 201]
        assert not failures, failures[:5]
        during = [a for a in answers if down_at <= a[0] <= up_at]
        assert len(during) >= REDIS_DOWN_S * 2, "complaints kept arriving during the outage"
        ids = [int(a[2]) for a in answers if a[2] is not None]
        assert len(set(ids)) == len(ids) == len(answers)
        # The outage reached the relay: it failed to publish and backed off.
        assert stack.scalar("SELECT count(*) FROM outbox_event WHERE attempts > 0") > 0
        params = {"ids": ids}

        def drained() -> bool:
            assert not relay.exited(), relay.output()[-3000:]
            assert not worker.exited(), worker.output()[-3000:]
            pending = stack.scalar("SELECT count(*) FROM outbox_event WHERE published_at IS NULL")
            routed = stack.scalar(
                "SELECT count(*) FROM complaint WHERE id = ANY(:ids) AND routing_status = 'routed'", **params
            )
            return pending == 0 and routed == len(ids)

        wait_for(drained, "the backlog to drain and every complaint to be routed", timeout=180, every=1)
        cases = stack.scalar("SELECT count(*) FROM case_file WHERE complaint_id = ANY(:ids)", **params)
        distinct = stack.scalar(
            "SELECT count(DISTINCT complaint_id) FROM case_file WHERE complaint_id = ANY(:ids)", **params
        )
        assert cases == distinct == len(ids)
        events = stack.scalar(
            "SELECT count(*) FROM outbox_event WHERE topic = 'complaint.created' "
            "AND CAST(payload ->> 'complaint_id' AS integer) = ANY(:ids)",
            **params,
        )
        assert events == len(ids)
    finally:
        relay.stop()
        worker.stop()


def _assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert int(resp.headers["Retry-After"]) > 0
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == "service_unavailable", body
    assert body["error"]["message"]


def test_postgres_restart_answers_503_then_recovers_in_the_same_process(
    stack: Stack, api_server: ApiServer
) -> None:
    pid = api_server.proc.process.pid
    [device] = _devices(stack, 1)
    with api_server.client() as client:
        headers = api_login(client, device)
        created = _post(client, headers)
        assert created.status_code == 201, created.text
        complaint = f"/api/v1/complaints/{created.json()['id']}"
        assert client.get(complaint, headers=headers).status_code == 200
        stack.pg.stop()
        try:
            for _ in range(3):
                health = client.get("/healthz")
                assert health.status_code == 503 and int(health.headers["Retry-After"]) > 0
                assert health.json()["status"] == "down" and health.json()["database"]["status"] == "down"
                _assert_unavailable(client.get(complaint, headers=headers))
                _assert_unavailable(_post(client, headers))
                _assert_unavailable(client.get(complaint, headers={**headers, "Accept-Language": "en"}))
        finally:
            stack.pg.start()
        assert client.get("/healthz").status_code == 200
        again = client.get(complaint, headers=headers)
        assert again.status_code == 200, again.text
        posted = _post(client, headers)
        assert posted.status_code == 201, posted.text
        # A new sign-in works too (the session and the login throttle both read the database).
        assert api_login(client, device)
    assert api_server.proc.process.pid == pid and not api_server.proc.exited()
