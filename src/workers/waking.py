"""arq's worker, woken when work arrives instead of finding it at its next poll.

Every write that makes a job ready (a submission, a retry, a promoted backoff) or asks for an
abort also publishes on the wake channel, in the same atomic step. The worker looks at the
queue as soon as it hears of one, and as soon as one of its own jobs ends and frees a slot;
it still polls every `poll_s`, so a missed message costs at most that.
"""

import asyncio
import contextlib
import logging
from typing import Any

from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from src import keys

log = logging.getLogger("jobcast.worker")

RESUBSCRIBE_S = 0.5


class WakingWorker(Worker):
    def __init__(self, *args: Any, poll_s: float, **kwargs: Any) -> None:
        super().__init__(*args, poll_delay=0, **kwargs)  # the wait is in _poll_iteration
        self.wake = asyncio.Event()
        self._poll_s = poll_s

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), self._poll_s)
        self.wake.clear()

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
