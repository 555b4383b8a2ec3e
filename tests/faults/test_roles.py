"""The background roles on several nodes: two relays publish each event once, two beats elect one scheduler
(the other takes over after a ``kill -9``), and SIGTERM stops a worker, a relay and a beat cleanly."""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from backend.outbox.broker import DEFAULT_QUEUE
from tests.faults.conftest import Proc, Stack, _port, wait_for
from tests.support.processes import probe

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

GONGPING = str(Path(sys.executable).parent / "gongping")


def _probe(port: int, path: str) -> dict[str, Any] | None:
    return probe(f"http://127.0.0.1:{port}", path, timeout=2)


def _queued_ids(stack: Stack) -> list[str]:
    client = redis.Redis.from_url(stack.redis.url)
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(DEFAULT_QUEUE, 0, -1)]


def _drop_queued(stack: Stack, prefix: str) -> None:
    client = redis.Redis.from_url(stack.redis.url)
    for raw in client.lrange(DEFAULT_QUEUE, 0, -1):
        if json.loads(raw)["headers"]["id"].startswith(prefix):
            client.lrem(DEFAULT_QUEUE, 1, raw)


def test_two_relays_at_once_publish_every_event_exactly_once(stack: Stack) -> None:
    # Many small batches, so the two relays' passes overlap all the time (SKIP LOCKED keeps them apart).
    first_id = int(stack.scalar("SELECT coalesce(max(id), 0) FROM outbox_event")) + 1
    with stack.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox_event (topic, payload, created_at, available_at, attempts, redrives) "
            "SELECT 'intake.job_submitted', json_build_object('job_id', 0), now(), now(), 0, 0 "
            "FROM generate_series(1, 600)"
        )
    last_id = first_id + 599
    env = {"GONGPING_RELAY_BATCH_SIZE": "7", "GONGPING_RELAY_POLL_SECONDS": "0.05"}
    ports = [_port(0), _port(0)]
    relays = [
        stack.spawn(f"relay{i}", [GONGPING, "relay", "--health-port", str(port)], env, new_session=True)
        for i, port in enumerate(ports)
    ]
    try:

        def published() -> bool:
            for relay in relays:
                assert not relay.exited(), relay.output()
            return (
                stack.scalar(
                    "SELECT count(*) FROM outbox_event WHERE id BETWEEN :a AND :b AND published_at IS NULL",
                    a=first_id,
                    b=last_id,
                )
                == 0
            )

        wait_for(published, "both relays to publish the 600 events", timeout=120)
        for port in ports:
            ready = _probe(port, "/readyz")
            assert ready is not None and ready["http"] == 200 and ready["role"] == "relay", ready
            live = _probe(port, "/livez")
            assert live is not None and live["http"] == 200, live
        ours = [
            i
            for i in _queued_ids(stack)
            if i.startswith("outbox-") and i.endswith("-gongping.intake.run_job")
        ]
        counted: dict[int, int] = {}
        for task_id in ours:
            event_id = int(task_id.split("-")[1])
            if first_id <= event_id <= last_id:
                counted[event_id] = counted.get(event_id, 0) + 1
        # Every event was sent, and none twice: each row was taken by exactly one relay.
        assert sorted(counted) == list(range(first_id, last_id + 1))
        assert set(counted.values()) == {1}
        # SIGTERM: each relay finishes its pass, says so, and exits 0.
        for relay in relays:
            relay.process.send_signal(signal.SIGTERM)
        for relay in relays:
            assert relay.process.wait(timeout=30) == 0, relay.output()
            assert "outbox relay: 已停止 / stopped" in relay.output()
    finally:
        for relay in relays:
            relay.stop()
        _drop_queued(stack, "outbox-")


def _beat(stack: Stack, name: str, port: int) -> Proc:
    env = {
        "GONGPING_BEAT_LEASE_SECONDS": "3",
        # Each beat its own var/ (the schedule file): no shared local directory between nodes.
        "GONGPING_BROKER_DIR": str(stack.folder / name / "broker"),
    }
    return stack.spawn(name, [GONGPING, "beat", "--health-port", str(port)], env, new_session=True)


def _lease(stack: Stack) -> tuple[str, int, str] | None:
    with stack.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT holder, term, expires_at::text FROM scheduler_lease WHERE name = 'beat'"
        ).first()
    return (str(row[0]), int(row[1]), str(row[2])) if row is not None else None


def test_two_beats_one_schedules_the_other_takes_over_after_kill_9(stack: Stack) -> None:
    ports = [_port(0), _port(0)]
    beats = [_beat(stack, f"beat{i}", port) for i, port in enumerate(ports)]
    try:

        def one_active() -> int | None:
            states = [_probe(port, "/readyz") for port in ports]
            if any(s is None or s["http"] != 200 for s in states):
                return None
            held = [i for i, s in enumerate(states) if s is not None and s["lease"] == "held"]
            return held[0] + 1 if len(held) == 1 and states[1 - held[0]]["lease"] == "standby" else None

        active = wait_for(one_active, "one beat to hold the lease and the other to stand by", timeout=90) - 1
        standby = 1 - active
        lease = _lease(stack)
        assert lease is not None and lease[0].endswith(f":{beats[active].process.pid}")
        term = lease[1]
        wait_for(lambda: "Sending due task" in beats[active].output(), "the active beat to send", timeout=30)
        assert "Sending due task" not in beats[standby].output()
        assert "standing by: the lease is held by" in beats[standby].output()
        beats[active].kill9()  # no release: the standby must wait out the lease (3 s)

        def taken_over() -> bool:
            state = _probe(ports[standby], "/readyz")
            return state is not None and state["lease"] == "held"

        wait_for(taken_over, "the standby beat to take the lease over", timeout=30)
        lease = _lease(stack)
        assert (
            lease is not None and lease[0].endswith(f":{beats[standby].process.pid}") and lease[1] == term + 1
        )
        wait_for(lambda: "Sending due task" in beats[standby].output(), "the new beat to send", timeout=30)
        assert "took the scheduler lease" in beats[standby].output()
        # SIGTERM: beat saves its schedule, gives the lease up at once, exits 0.
        beats[standby].process.send_signal(signal.SIGTERM)
        assert beats[standby].process.wait(timeout=30) == 0, beats[standby].output()
        assert "released the scheduler lease" in beats[standby].output()
        lease = _lease(stack)
        assert lease is not None and lease[2].startswith("2000-01-01")
    finally:
        for beat in beats:
            beat.stop()


def test_sigterm_to_the_worker_group_finishes_the_tasks_under_way(stack: Stack) -> None:
    port = _port(0)
    env = {"GONGPING_FAULT_PAUSE": "events.log=6"}
    worker = stack.spawn(
        "worker",
        [GONGPING, "worker", "--concurrency", "2", "--health-port", str(port)],
        env,
        new_session=True,
    )
    try:
        wait_for(lambda: "ready." in worker.output() or worker.exited(), "the worker to start", timeout=90)
        assert not worker.exited(), worker.output()
        ready = wait_for(lambda: _probe(port, "/readyz"), "the worker's readiness", timeout=10)
        assert ready["http"] == 200 and ready["role"] == "worker", ready
        ids = [f"sigterm-{uuid.uuid4().hex}" for _ in range(2)]
        for task_id in ids:
            stack.celery.send_task("gongping.events.log", args=[0], task_id=task_id)
        wait_for(
            lambda: all(f"[{i}] received" in worker.output() for i in ids), "both tasks to start", timeout=30
        )
        # As systemd's default KillMode does: SIGTERM to every process of the group, pool processes too.
        os.killpg(worker.process.pid, signal.SIGTERM)
        assert worker.process.wait(timeout=60) == 0, worker.output()
        out = worker.output()
        assert all(f"[{i}] succeeded" in out for i in ids), out
        assert "WorkerLostError" not in out and "exited with 'signal" not in out, out
        assert "Warm shutdown" in out
    finally:
        worker.stop()
