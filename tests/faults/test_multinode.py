"""Several nodes: two APIs, two workers, two relays and two beats, each with its own port and its own var/
directory, on one PostgreSQL, one Redis and one S3-compatible object store (moto's server, the tests'
stand-in). Complaints with photos arrive round-robin on
both APIs; midway one API, one worker, one relay and the active beat are killed with ``kill -9``.

Every complaint exists once, every photo is processed once and readable through the other API, every outbox
event is handled, the standby beat takes the lease over, and the per-address rate limit holds across both APIs
(Redis-backed, addresses from ``X-Forwarded-For`` believed from the trusted proxy).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from backend.auth.models import Role
from tests.factories import complaint_json, make_account
from tests.faults.conftest import VISIBILITY_TIMEOUT_S, Stack, api_login, wait_for
from tests.fixtures.media_images import jpeg, photo_like
from tests.support.processes import Cluster, Node
from tests.support.s3_standin import MotoServer

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

COMPLAINTS = 12
#: Submissions one client address may make per hour, on both APIs together.
PER_ADDRESS = 4


@dataclass
class ObjectStore:
    """The S3-compatible store every node keeps photos in (moto's server, the tests' stand-in)."""

    server: MotoServer
    bucket: str
    prefix: str = "media"

    def env(self) -> dict[str, str]:
        return self.server.media_env(self.bucket, prefix=self.prefix)

    def keys(self, folder: str) -> list[str]:
        """Every object key under ``<prefix>/<folder>/``."""
        pages = self.server.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in pages.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{folder}/")
            for item in page.get("Contents", [])
        ]


@pytest.fixture(scope="module")
def object_store() -> Iterator[ObjectStore]:
    with MotoServer.spawn() as server:
        yield ObjectStore(server, server.create_bucket())


@pytest.fixture
def cluster(stack: Stack, object_store: ObjectStore) -> Iterator[Cluster]:
    shared = {
        **object_store.env(),
        "GONGPING_RATE_LIMIT_STORAGE_URL": stack.redis.url.rsplit("/", 1)[0] + "/3",
        "GONGPING_TRUSTED_PROXIES": "127.0.0.1",
        "GONGPING_COMPLAINT_RATE_PER_ADDRESS": f"{PER_ADDRESS}/hour",
        "GONGPING_BEAT_LEASE_SECONDS": "3",
    }
    built = Cluster(stack.folder, shared, spawn=stack.spawn)
    try:
        built.start_roles(each=2)
        built.wait_ready()
        yield built
    finally:
        built.stop()


def _submit(
    apis: list[Node], first: int, headers: dict[str, str], photo: bytes, address: str
) -> httpx.Response:
    """POST a complaint to ``apis[first]``; if that node is gone, the client retries on the next (same key)."""
    body = {"complaint": json.dumps(complaint_json(), ensure_ascii=False)}
    headers = {**headers, "Idempotency-Key": uuid.uuid4().hex, "X-Forwarded-For": address}
    last: Exception | None = None
    for attempt in range(len(apis)):
        node = apis[(first + attempt) % len(apis)]
        try:
            with httpx.Client(base_url=node.base_url, timeout=60) as client:
                return client.post(
                    "/api/v1/complaint-form",
                    data=body,
                    files=[("photos", ("p.jpg", photo, "image/jpeg"))],
                    headers=headers,
                )
        except httpx.TransportError as exc:
            last = exc
    raise AssertionError(f"no API answered: {last}")


def _lease(stack: Stack) -> tuple[str, int]:
    with stack.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT holder, term FROM scheduler_lease WHERE name = 'beat'").one()
    return str(row[0]), int(row[1])


def test_two_of_each_role_survive_kill_9_of_one_of_each(
    stack: Stack, cluster: Cluster, object_store: ObjectStore
) -> None:
    nodes = cluster.nodes
    apis = [nodes["api1"], nodes["api2"]]
    first_event = int(stack.scalar("SELECT coalesce(max(id), 0) FROM outbox_event"))
    # The active beat, by its own report and by the lease row.
    active = wait_for(
        lambda: next(
            (
                n
                for n in (nodes["beat1"], nodes["beat2"])
                if (s := n.probe("/readyz")) and s["lease"] == "held"
            ),
            None,
        ),
        "one beat to hold the lease",
        timeout=60,
    )
    standby = nodes["beat2"] if active is nodes["beat1"] else nodes["beat1"]
    holder, term = _lease(stack)
    assert holder.endswith(f":{active.proc.process.pid}")

    with stack.session() as s:
        devices = [make_account(s, Role.consumer_device) for _ in range(COMPLAINTS + 1)]
        s.commit()
        usernames = [d.username for d in devices]
    with httpx.Client(base_url=apis[1].base_url, timeout=30) as client:
        auth = [api_login(client, u) for u in usernames]

    ids: list[int] = []
    for i in range(COMPLAINTS):
        if i == COMPLAINTS // 2:
            # Midway: one of each role dies without any cleanup.
            for victim in (nodes["api1"], nodes["worker1"], nodes["relay1"], active):
                victim.proc.kill9()
        photo = jpeg(photo_like(640, 480, seed=100 + i))
        # Each complaint from its own client address, through the proxy (trusted: 127.0.0.1).
        resp = _submit(apis, i % 2, auth[i], photo, f"198.51.100.{i + 1}")
        assert resp.status_code == 201, resp.text
        ids.append(int(resp.json()["id"]))

    # Every complaint exists once.
    assert len(set(ids)) == COMPLAINTS
    owners = stack.scalar(
        "SELECT count(DISTINCT c.account_id) FROM complaint c JOIN account a ON a.id = c.account_id "
        "WHERE a.username = ANY(:names)",
        names=usernames[:COMPLAINTS],
    )
    total = stack.scalar(
        "SELECT count(*) FROM complaint c JOIN account a ON a.id = c.account_id WHERE a.username = ANY(:names)",
        names=usernames[:COMPLAINTS],
    )
    assert owners == total == COMPLAINTS

    # Every photo processed, by the surviving worker where the killed one left off.
    def processed() -> bool:
        assert not nodes["worker2"].proc.exited(), nodes["worker2"].proc.output()[-3000:]
        return (
            stack.scalar(
                "SELECT count(*) FROM complaint_photo WHERE complaint_id = ANY(:ids) AND status = 'processed'",
                ids=ids,
            )
            == COMPLAINTS
        )

    wait_for(processed, "every photo to be processed", timeout=180 + VISIBILITY_TIMEOUT_S, every=1)
    # Once: one set of renditions per photo (content-addressed keys, one per photo).
    keys = stack.scalar(
        "SELECT count(DISTINCT display_key) + count(DISTINCT thumbnail_key) FROM complaint_photo "
        "WHERE complaint_id = ANY(:ids)",
        ids=ids,
    )
    assert keys == 2 * COMPLAINTS
    # In the object store: each original once and one set of renditions, nothing on any node's own disk.
    assert len(object_store.keys("complaint-originals")) == COMPLAINTS
    assert len(object_store.keys("complaint-display")) == COMPLAINTS
    assert len(object_store.keys("complaint-thumbnails")) == COMPLAINTS
    local = [p for p in (stack.folder / "nodes").rglob("*") if p.is_file() and "media" in p.parts]
    assert local == []
    # Readable through the API that survived, whichever node received the complaint.
    with httpx.Client(base_url=apis[1].base_url, timeout=30) as client:
        for i, complaint_id in enumerate(ids):
            with stack.engine.connect() as conn:
                photo_id = conn.exec_driver_sql(
                    "SELECT id FROM complaint_photo WHERE complaint_id = %(c)s", {"c": complaint_id}
                ).scalar_one()
            for rendition in ("display", "thumbnail"):
                got = client.get(
                    f"/api/v1/complaints/{complaint_id}/photos/{photo_id}/{rendition}", headers=auth[i]
                )
                assert got.status_code == 200 and got.content[:2] == b"\xff\xd8", (rendition, got.text[:200])

    # Every outbox event of the run handled (published by the surviving relay, its tasks all finished).
    def handled() -> bool:
        return (
            stack.scalar(
                "SELECT count(*) FROM outbox_event WHERE id > :e AND handled_at IS NULL", e=first_event
            )
            == 0
        )

    wait_for(handled, "every outbox event to be handled", timeout=180, every=1)
    assert stack.scalar("SELECT count(*) FROM outbox_event WHERE id > :e", e=first_event) >= COMPLAINTS

    # The standby beat took the lease over and sends the schedule.
    wait_for(
        lambda: (s := standby.probe("/readyz")) and s["lease"] == "held", "the standby beat to take over", 60
    )
    holder, new_term = _lease(stack)
    assert holder.endswith(f":{standby.proc.process.pid}") and new_term == term + 1
    wait_for(lambda: "Sending due task" in standby.proc.output(), "the new beat to send", timeout=30)

    # One client address: PER_ADDRESS submissions in an hour across both APIs, then 429 from either. The
    # complaint body is invalid on purpose (no photo needed): the limit counts every attempt.
    nodes["api1"] = cluster.start("api1b", "api")
    wait_for(lambda: cluster.ready(nodes["api1"]), "the restarted API", timeout=120)
    both = [nodes["api1"], apis[1]]
    codes: list[int] = []
    for i in range(PER_ADDRESS + 2):
        with httpx.Client(base_url=both[i % 2].base_url, timeout=30) as client:
            resp = client.post(
                "/api/v1/complaint-form",
                data={"complaint": "{}"},
                headers={
                    **auth[COMPLAINTS],
                    "Idempotency-Key": uuid.uuid4().hex,
                    "X-Forwarded-For": "203.0.113.77",
                },
            )
        codes.append(resp.status_code)
    assert all(code != 429 for code in codes[:PER_ADDRESS]), codes
    assert codes[PER_ADDRESS:] == [429, 429], codes
