"""A worker's heartbeat: it re-announces itself every `heartbeat_s` (store.workers); its entries
expire after `heartbeat_ttl_s` without one. `workers_online` and /api/workers read them."""

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable

import msgspec
import redis
from redis.exceptions import RedisError

from jobcast.model.tasks import utc_now
from jobcast.store.workers import WorkerInfo, announce, farewell

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Heartbeat:
    """Beats from a thread of its own, on a connection of its own: a handler that blocks the
    event loop must not make its worker look lost, or its task would run twice at once.

    Each beat also extends arq's in-progress marker of every job the worker holds, which
    otherwise outlives a killed worker by the longest timeout: a lost worker's jobs are free
    for others one TTL after its last beat.
    """

    def __init__(
        self,
        redis_url: str,
        info: WorkerInfo,
        running: Callable[[], list[str]],
        held_jobs: Callable[[], list[str]],
        *,
        interval_s: float,
        ttl_s: float,
    ) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=ttl_s, socket_connect_timeout=ttl_s)
        self._info = info
        self._running = running
        self._held_jobs = held_jobs
        self._interval_s = interval_s
        self._ttl_ms = int(ttl_s * 1000)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def beat(self) -> None:
        """Announce this worker and the types it serves, valid for one TTL."""
        info = msgspec.structs.replace(self._info, heartbeat_at=utc_now(), running=self._running())
        announce(self._redis, info, self._held_jobs(), self._ttl_ms)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and say goodbye, so workers_online drops at once. The worker stays in
        the registry: should it still hold tasks, the reconciler recovers them."""
        self._stopping.set()
        self._thread.join()
        with contextlib.suppress(RedisError):
            farewell(self._redis, self._info)
        self._redis.close()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self.beat()
            except (RedisError, OSError) as error:
                log.warning("heartbeat failed: %s", error)
