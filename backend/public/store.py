"""The shared store of rendered public answers: a QR page or public profile is rendered once and then served by
every process from Redis until something behind it changes.

A scan of a code nobody scanned in the last minute used to cost three database round trips and ~3 ms of
templating; from the store it is one Redis GET. Correctness rests on invalidation, not on expiry:

- Every answer is stored under the operators it shows (``request.state.public_operator_ids``, set by the
  route), in a per-operator index set.
- Every committed change to what a public answer shows invalidates those operators: ORM writes are found by a
  session hook (operators, stalls, instruments, commitments, ratings, records), bulk Core writes call ``touch``.
  The hook runs after the commit, so a reader that misses renders from committed data.
- A render racing a change cannot store what it read before the change: invalidation stamps each operator with
  a value of a store-wide counter, the renderer reads the counter before it reads the database, and the store
  script refuses the write when any of its operators was stamped since (one atomic Lua script each).
- Expiry is the safety net only: ``public_store_seconds`` for an invalidation lost to a Redis outage, and the
  next day on which one of the page's instruments becomes due or overdue (the state is derived from the date).

Redis being slow or down never fails a public request: the store answers "miss" and the page is rendered.
Nothing stored is personal: only anonymous 200 answers of the public paths (see ``cache.PublicCacheMiddleware``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, UOWTransaction

from backend.config import Settings, get_settings
from backend.public.redis_get import PipelinedGet

log = logging.getLogger(__name__)

_PREFIX: Final = "gp:pub:"
CLOCK_KEY: Final = f"{_PREFIX}clock"
#: Answers dropped by a change, for the worker to render again (``refresh``): the next scan is a hit too.
REFRESH_KEY: Final = f"{_PREFIX}refresh"
#: The most answers waiting to be rendered again; past it the oldest are forgotten (rendered on their next scan).
REFRESH_CAP: Final = 100_000
#: ``session.info`` key: operators whose public answers this transaction changed.
_DIRTY: Final = "gongping_public_dirty"
#: Operators per invalidation script: a bulk import of 100,000 operators goes in bounded steps.
_INVALIDATE_BATCH: Final = 500
# A slow Redis must not hold a scan for long: the page renders without it.
_SOCKET_TIMEOUT: Final = 0.25
#: After a failure the serving path leaves Redis alone this long (no timeout per scan, one log line per outage).
BACKOFF_SECONDS: Final = 5.0


def page_key(path: str, query: bytes, locale: str) -> str:
    """The key of one public answer: path, query and the language it was served in."""
    return f"{_PREFIX}p:{locale}:{path}?{query.decode('latin-1')}"


def _index_key(operator_id: int) -> str:
    return f"{_PREFIX}o:{operator_id}"


def _stamp_key(operator_id: int) -> str:
    return f"{_PREFIX}i:{operator_id}"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A stored 200 answer: its headers (as rendered), its body (gzip-compressed when ``gzipped``: pages shrink
    to about a quarter, in Redis and on a phone's connection), and when it was rendered (for ``Age``).
    """

    headers: list[tuple[bytes, bytes]]
    body: bytes
    rendered_at: float
    gzipped: bool = False

    def encode(self) -> bytes:
        head = json.dumps(
            [
                self.rendered_at,
                [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
                self.gzipped,
            ],
            separators=(",", ":"),
        )
        return head.encode("latin-1") + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> StoredAnswer:
        head, _, body = raw.partition(b"\n")
        rendered_at, headers, gzipped = json.loads(head)
        return cls(
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            body,
            float(rendered_at),
            bool(gzipped),
        )


# KEYS: the answer, then each operator's stamp, then each operator's index.
# ARGV: the encoded answer, its lifetime in seconds, the counter read before rendering, the operator count.
_STORE = """
local n = tonumber(ARGV[4])
local read_at = tonumber(ARGV[3])
for i = 2, n + 1 do
  local stamp = redis.call('GET', KEYS[i])
  if stamp and tonumber(stamp) > read_at then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = n + 2, 2 * n + 1 do
  redis.call('SADD', KEYS[i], KEYS[1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 1
"""

# KEYS: the counter, the refresh queue, then each operator's stamp, then each operator's index.
# ARGV: the stamps' lifetime, the queue's cap. The answers named in an index are deleted and queued for the
# worker to render again (they were being read); they are not declared keys (fine on one Redis, which is what we
# run: a cluster would need the operator id as a hash tag in every key). Returns how many were dropped.
_INVALIDATE = """
local n = (#KEYS - 2) / 2
local now = redis.call('INCR', KEYS[1])
local dropped = 0
for i = 3, n + 2 do
  redis.call('SET', KEYS[i], now, 'EX', ARGV[1])
  local index = KEYS[i + n]
  local answers = redis.call('SMEMBERS', index)
  for j = 1, #answers, 500 do
    local part = {unpack(answers, j, math.min(j + 499, #answers))}
    redis.call('DEL', unpack(part))
    redis.call('RPUSH', KEYS[2], unpack(part))
  end
  dropped = dropped + #answers
  redis.call('DEL', index)
end
if dropped > 0 then
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
end
return dropped
"""


class PublicStore:
    """Rendered public answers in Redis, shared by every process, invalidated by operator."""

    def __init__(self, url: str, *, seconds: int) -> None:
        self.url = url
        self.seconds = seconds
        self._sync = redis.Redis.from_url(url, socket_timeout=_SOCKET_TIMEOUT, socket_connect_timeout=1)
        self._invalidate = self._sync.register_script(_INVALIDATE)
        # redis.asyncio connections belong to one event loop: a client per loop (uvicorn runs one per process).
        self._async: tuple[asyncio.AbstractEventLoop, aioredis.Redis[bytes], Any, PipelinedGet] | None = None
        self._down_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, doing: str, exc: BaseException) -> None:
        if self._available():
            log.warning(
                "public store unavailable (%s), rendering for %.0f s: %s", doing, BACKOFF_SECONDS, exc
            )
        self._down_until = time.monotonic() + BACKOFF_SECONDS

    def _client(self) -> tuple[aioredis.Redis[bytes], Any, PipelinedGet]:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = aioredis.Redis.from_url(
                self.url, socket_timeout=_SOCKET_TIMEOUT, socket_connect_timeout=_SOCKET_TIMEOUT
            )
            getter = PipelinedGet(self.url, timeout=_SOCKET_TIMEOUT)
            self._async = (loop, client, client.register_script(_STORE), getter)
        return self._async[1], self._async[2], self._async[3]

    async def get(self, key: str) -> StoredAnswer | None:
        """The stored answer, or None (also when Redis cannot be reached)."""
        if not self._available():
            return None
        try:
            raw = await self._client()[2].get(key.encode("latin-1"))
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return None
        if raw is None:
            return None
        try:
            return StoredAnswer.decode(raw)
        except (ValueError, TypeError, UnicodeError):
            log.warning("public store: unreadable entry %r, rendering instead", key)
            return None

    async def clock(self) -> int | None:
        """The invalidation counter, read before rendering; None when Redis cannot be reached (then no store)."""
        if not self._available():
            return None
        try:
            value = await self._client()[2].get(CLOCK_KEY.encode())
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return None
        return int(value or 0)

    async def put(
        self, key: str, answer: StoredAnswer, operator_ids: Iterable[int], *, read_at: int, seconds: int
    ) -> bool:
        """Store an answer under its operators, unless one of them changed since ``read_at``."""
        ids = sorted(set(operator_ids))
        if not ids or seconds <= 0 or not self._available():
            return False
        keys = [key, *(_stamp_key(i) for i in ids), *(_index_key(i) for i in ids)]
        try:
            stored = await self._client()[1](
                keys=keys, args=[answer.encode(), min(seconds, self.seconds), read_at, len(ids)]
            )
        except (RedisError, OSError) as exc:
            self._failed("write", exc)
            return False
        return bool(stored)

    def invalidate(self, operator_ids: Iterable[int]) -> int:
        """Drop every stored answer showing these operators, queue them to be rendered again, and stamp the
        operators against racing renders. Returns how many answers were dropped.
        """
        ids = sorted(set(operator_ids))
        # A stamp must outlive any answer stored before it; renders take milliseconds, answers live `seconds`.
        ttl = self.seconds + 60
        dropped = 0
        for start in range(0, len(ids), _INVALIDATE_BATCH):
            batch = ids[start : start + _INVALIDATE_BATCH]
            keys = [
                CLOCK_KEY,
                REFRESH_KEY,
                *(_stamp_key(i) for i in batch),
                *(_index_key(i) for i in batch),
            ]
            dropped += int(self._invalidate(keys=keys, args=[ttl, REFRESH_CAP]))
        return dropped

    def take_refresh(self, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` dropped answers to render again, as (language, path with query), each once."""
        with self._sync.pipeline() as pipe:
            pipe.lrange(REFRESH_KEY, 0, limit - 1)
            pipe.ltrim(REFRESH_KEY, limit, -1)
            raw, _ = pipe.execute()
        wanted: dict[tuple[str, str], None] = {}
        for key in raw:
            locale, _, target = key.decode("latin-1").removeprefix(f"{_PREFIX}p:").partition(":")
            if target.startswith("/"):
                wanted[(locale, target.removesuffix("?"))] = None
        return list(wanted)

    async def aclose(self) -> None:
        """Close this event loop's connections (a worker renders in a fresh loop each time)."""
        if self._async is not None:
            self._async[3].close()
            await self._async[1].aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
            self._async = None

    def close(self) -> None:
        """Release the connections (tests that switch stores)."""
        self._sync.close()
        self._async = None


@lru_cache(maxsize=4)
def _store_for(url: str, seconds: int) -> PublicStore:
    return PublicStore(url, seconds=seconds)


def get_store(settings: Settings | None = None) -> PublicStore | None:
    """The configured store, or None when ``public_store_url`` is empty (then every process renders)."""
    settings = settings or get_settings()
    if not settings.public_store_url:
        return None
    return _store_for(settings.public_store_url, settings.public_store_seconds)


def seconds_until(day: date | None, *, now: datetime | None = None) -> float | None:
    """Seconds from now to the bureau's midnight starting ``day`` (pages are rendered on the bureau's date).

    A naive ``now`` is the bureau's wall time."""
    # Imported here: backend.db imports this module while it loads (its session hook), and dates needs db.
    from backend.dates import bureau_zone
    from backend.db import utcnow

    if day is None:
        return None
    zone = bureau_zone()
    current = utcnow() if now is None else now if now.tzinfo is not None else now.replace(tzinfo=zone)
    return max(0.0, (datetime.combine(day, datetime.min.time(), tzinfo=zone) - current).total_seconds())


def next_state_change(
    valid_until: Iterable[tuple[bool | None, date | None]], *, today: date, due_days: int
) -> date | None:
    """The first day after ``today`` on which one of these instruments turns due soon or overdue.

    Takes each instrument's (last passed, valid until); only a passed verification with an end date changes
    state with time (see ``instruments.service.verification_state``).
    """
    days: list[date] = []
    for passed, until in valid_until:
        if passed is not True or until is None:
            continue
        for change in (until - timedelta(days=due_days), until + timedelta(days=1)):
            if change > today:
                days.append(change)
                break
    return min(days, default=None)


# ---- invalidation: what a committed transaction changed ------------------------------------------------------


def touch(session: Session, operator_ids: Iterable[int]) -> None:
    """Mark operators whose public answers this transaction changed (for writes that bypass the ORM)."""
    if get_settings().public_store_url:
        session.info.setdefault(_DIRTY, set()).update(int(i) for i in operator_ids if i)


def _operator_ids(instance: object) -> Iterable[int]:
    """The operators whose public answers show this row, before and after the change."""
    # Imported here: the models import the database layer, which imports this module.
    from backend.instruments.models import Instrument
    from backend.operators.models import Operator, SelfCommitment, Stall
    from backend.records.models import IntegrityRecord, OperatorRating

    if isinstance(instance, Operator):
        attrs: tuple[str, ...] = ("id",)
    elif isinstance(instance, Stall):
        attrs = ("market_id",)
    elif isinstance(instance, Instrument | SelfCommitment | IntegrityRecord | OperatorRating):
        attrs = ("operator_id",)
    else:
        return ()
    ids: list[int] = []
    state = inspect(instance, raiseerr=False)
    for attr in attrs:
        current = getattr(instance, attr, None)
        if current:
            ids.append(int(current))
        # A row moved to another operator changes that operator's page too.
        if state is not None:
            ids.extend(int(v) for v in state.attrs[attr].history.deleted if v)
    return ids


def _collect(session: Session, _flush: UOWTransaction) -> None:
    # After the flush new rows have their ids, and the new/dirty/deleted lists and attribute histories still
    # describe what the flush wrote.
    if not get_settings().public_store_url:
        return
    dirty: set[int] = session.info.setdefault(_DIRTY, set())
    for instance in (*session.new, *session.dirty, *session.deleted):
        dirty.update(_operator_ids(instance))


def _publish(session: Session) -> None:
    ids: set[int] | None = session.info.pop(_DIRTY, None)
    if ids:
        _invalidate_or_retry(ids)


# Operators whose invalidation could not reach Redis, retried from a timer until it can: a partition between
# one API host and Redis must not leave the other hosts serving the old page for a whole day.
_pending: set[int] = set()
_pending_lock = threading.Lock()
_retry_timer: threading.Timer | None = None
#: Retry every this many seconds while some invalidation is pending.
RETRY_SECONDS = 5.0
#: Past this many pending operators the oldest marks are not kept (their answers still expire).
_PENDING_CAP = 1_000_000


def _invalidate_or_retry(ids: set[int]) -> None:
    global _retry_timer
    store = get_store()
    if store is None:
        return
    with _pending_lock:
        ids = ids | _pending
        _pending.clear()
    try:
        store.invalidate(ids)
    except (RedisError, OSError) as exc:
        log.error("public store: could not invalidate %d operators, retrying: %s", len(ids), exc)
        with _pending_lock:
            if len(_pending) + len(ids) <= _PENDING_CAP:
                _pending.update(ids)
            if _retry_timer is None or not _retry_timer.is_alive():
                _retry_timer = threading.Timer(RETRY_SECONDS, _retry)
                _retry_timer.daemon = True
                _retry_timer.start()


def _retry() -> None:
    with _pending_lock:
        waiting = set(_pending)
    if waiting:
        _invalidate_or_retry(set())


def forget_pending() -> None:
    """Drop pending invalidations and stop retrying (tests; a store that was switched off)."""
    with _pending_lock:
        _pending.clear()
        if _retry_timer is not None:
            _retry_timer.cancel()


def pending_invalidations() -> int:
    """How many operators wait for an invalidation Redis did not take (health and tests)."""
    with _pending_lock:
        return len(_pending)


def _forget(session: Session) -> None:
    session.info.pop(_DIRTY, None)


def install() -> None:
    """Hook every session: collect changed operators on flush, invalidate after commit, forget on rollback."""
    if not event.contains(Session, "after_flush", _collect):
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "after_commit", _publish)
        event.listen(Session, "after_soft_rollback", _forget_soft)


def _forget_soft(session: Session, previous_transaction: Any) -> None:
    # A rolled-back savepoint keeps the outer transaction's marks (extra invalidation is harmless); a rollback
    # of the whole transaction drops them: nothing was committed.
    if previous_transaction.parent is None:
        _forget(session)


def now() -> float:
    """Wall-clock time for ``rendered_at`` (shared between hosts, unlike the monotonic clock)."""
    return time.time()
