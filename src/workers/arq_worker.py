"""arq's worker with two changes: it is woken when work arrives instead of finding it at its
next poll, and it claims every ready job it has room for in one atomic step instead of one
job at a time.

Waking: every write that makes a job ready (a submission, a retry, a promoted backoff) or asks
for an abort also publishes on the wake channel, in the same atomic step. The worker looks at
the queue as soon as it hears of one, and as soon as one of its own jobs ends and frees a slot;
it still polls every `poll_s`, so a missed message costs at most that.

Claiming: arq claims each job with WATCH, EXISTS, ZSCORE and MULTI/PSETEX/EXEC, four round
trips one job after the other. store.queue.claim makes the same checks and sets the same
in-progress marks for a whole batch in one, and reads each job's task on the way.
"""

import asyncio
import contextlib
import functools
import logging
from typing import Any

from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from jobcast.store import keys
from jobcast.store.queue import Prefetched, claim
from jobcast.store.scripts import register

log = logging.getLogger("jobcast.worker")

RESUBSCRIBE_S = 0.5


class JobcastWorker(Worker):
    """arq's Worker, woken by the wake channel and claiming ready jobs in batches."""

    def __init__(self, *args: Any, poll_s: float, prefetched: Prefetched, **kwargs: Any) -> None:
        super().__init__(*args, poll_delay=0, **kwargs)  # the wait is in _poll_iteration
        self.wake = asyncio.Event()
        self._poll_s = poll_s
        self._claim: AsyncScript | None = None  # registered once arq's pool exists
        self._prefetched = prefetched

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), self._poll_s)
        self.wake.clear()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim as many of these jobs as there are free slots, in one step, and run them."""
        free = self.max_jobs - self.job_counter
        candidates = [job_id for job_id in map(bytes.decode, job_ids) if job_id not in self.tasks]
        if free <= 0 or not candidates:
            return
        if self._claim is None:
            self._claim = register(self.pool, "claim_jobs")
        mark_ms = int(self.in_progress_timeout_s * 1000)
        for job in await claim(self._claim, self.queue_name, candidates, free, timestamp_ms(), mark_ms):
            await self.sem.acquire()
            self.job_counter += 1
            self._prefetched[job.job_id] = job.stored
            task = self.loop.create_task(self.run_job(job.job_id, job.score))
            task.add_done_callback(functools.partial(self._job_done, job.job_id))
            self.tasks[job.job_id] = task

    def _job_done(self, job_id: str, _: asyncio.Task[None]) -> None:
        self._prefetched.pop(job_id, None)  # unused when the job ran nothing (a refused payload)
        self._release_sem_dec_counter_on_complete()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self.wake.set()  # a slot is free: take the next queued job now


async def listen_for_wakes(redis: Redis, wake: asyncio.Event) -> None:
    """Set `wake` for every message on the wake channel, resubscribing after an outage."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(keys.WAKE_CHANNEL)
                async for _ in pubsub.listen():
                    wake.set()  # the subscription's confirmation too: work may have come meanwhile
        except (RedisError, OSError) as error:
            log.warning("wake channel lost (%s); polling every poll_s until it is back", error)
        await asyncio.sleep(RESUBSCRIBE_S)
