"""The public store's pipelined GET connection, against a real Redis: in-order replies under concurrency,
errors, timeouts, lost connections and authentication."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import uvloop
from redis.exceptions import RedisError, ResponseError

from backend.public.redis_get import PipelinedGet


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_concurrent_gets_each_get_their_own_value(redis_url: str, db: redis.Redis, loop: str) -> None:
    values = {f"k{i}".encode(): (f"v{i}-" + "x" * (i * 37 % 5000)).encode() for i in range(300)}
    db.mset(values)  # type: ignore[arg-type]

    async def scenario() -> list[bytes | None]:
        getter = PipelinedGet(redis_url, timeout=2)
        try:
            keys = [*values, b"missing"]
            return list(await asyncio.gather(*(getter.get(k) for k in keys)))
        finally:
            getter.close()

    # uvicorn serves on uvloop when it is installed (uvicorn[standard]): its transports are its own classes.
    replies = asyncio.run(scenario()) if loop == "asyncio" else uvloop.run(scenario())
    assert replies == [*values.values(), None]


def test_an_error_reply_fails_that_get_only(redis_url: str, db: redis.Redis) -> None:
    db.rpush("a-list", "x")
    db.set("k", "v")

    async def scenario() -> bytes | None:
        getter = PipelinedGet(redis_url, timeout=2)
        try:
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await getter.get(b"a-list")
            return await getter.get(b"k")
        finally:
            getter.close()

    assert asyncio.run(scenario()) == b"v"


def test_a_killed_connection_is_replaced_on_the_next_get(redis_url: str, db: redis.Redis) -> None:
    db.set("k", "v")

    async def scenario() -> bytes | None:
        getter = PipelinedGet(redis_url, timeout=2)
        try:
            assert await getter.get(b"k") == b"v"
            db.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await asyncio.sleep(0.05)
            return await getter.get(b"k")
        finally:
            getter.close()

    assert asyncio.run(scenario()) == b"v"


def test_gets_waiting_when_the_connection_drops_fail_at_once() -> None:
    # A server that reads the commands and hangs up without answering.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def hang_up() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()

    async def scenario() -> tuple[list[object], float]:
        getter = PipelinedGet(f"redis://127.0.0.1:{port}/0", timeout=5)
        started = time.monotonic()
        try:
            results = await asyncio.gather(*(getter.get(b"k") for _ in range(3)), return_exceptions=True)
        finally:
            getter.close()
        return list(results), time.monotonic() - started

    try:
        results, took = asyncio.run(scenario())
        assert all(isinstance(r, RedisError) for r in results) and took < 2  # not the 5 s timeout
    finally:
        server.close()
        thread.join(timeout=5)


def test_a_server_that_does_not_answer_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]

    async def scenario() -> float:
        getter = PipelinedGet(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        started = time.monotonic()
        try:
            results = await asyncio.gather(*(getter.get(b"k") for _ in range(5)), return_exceptions=True)
        finally:
            getter.close()
        assert all(isinstance(r, RedisError) for r in results)
        return time.monotonic() - started

    try:
        assert asyncio.run(scenario()) < 1.5
    finally:
        silent.close()


def test_nothing_listening_is_a_redis_error() -> None:
    async def scenario() -> None:
        getter = PipelinedGet("redis://127.0.0.1:9/0", timeout=0.5)
        with pytest.raises(RedisError):
            await getter.get(b"k")

    asyncio.run(scenario())


def test_a_password_and_database_in_the_url_are_used() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server to start one with a password")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    admin = redis.Redis(port=port, password="s3cret", db=3)
    try:
        for _ in range(100):
            try:
                admin.set("k", "in-db-3")
                break
            except redis.ConnectionError:
                time.sleep(0.05)

        async def scenario() -> tuple[bytes | None, bool]:
            good = PipelinedGet(f"redis://:s3cret@127.0.0.1:{port}/3", timeout=2)
            bad = PipelinedGet(f"redis://:wrong@127.0.0.1:{port}/3", timeout=2)
            try:
                value = await good.get(b"k")
                try:
                    await bad.get(b"k")
                    refused = False
                except RedisError:
                    refused = True
                return value, refused
            finally:
                good.close()
                bad.close()

        assert asyncio.run(scenario()) == (b"in-db-3", True)
    finally:
        admin.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_reply_waiting_while_the_loop_was_busy_is_not_a_timeout(
    redis_url: str, db: redis.Redis, loop: str
) -> None:
    # A render that holds the event loop longer than the timeout: Redis answered in time, the reply is
    # waiting in the socket, and uvloop runs the overdue timer before it reads the socket.
    db.set("k", "v")

    async def scenario() -> tuple[bytes | None, bytes | None]:
        getter = PipelinedGet(redis_url, timeout=0.2)
        try:
            await getter.get(b"k")  # connected
            pending = asyncio.ensure_future(getter.get(b"k"))
            for _ in range(3):  # the GET is sent and its deadline set
                await asyncio.sleep(0)
            time.sleep(0.6)  # noqa: ASYNC251  # the point: the loop is held
            first = await pending
            connections = db.info("stats")["total_connections_received"]
            second = await getter.get(b"k")
            # The same connection answered: the deadline did not close it behind the reply's back.
            assert db.info("stats")["total_connections_received"] == connections
            return first, second
        finally:
            getter.close()

    result = asyncio.run(scenario()) if loop == "asyncio" else uvloop.run(scenario())
    assert result == (b"v", b"v")
