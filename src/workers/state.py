"""What a worker process holds, kept in arq's ctx and read through one typed accessor."""

import time
from dataclasses import dataclass, field
from typing import Any

from jobcast.settings import Settings
from jobcast.store.queue import Prefetched
from jobcast.store.task_types import TypeStore
from jobcast.store.tasks import TaskStore
from jobcast.workers.blocking import BlockingPool
from jobcast.workers.definition import TaskDefinition

STATE_KEY = "jobcast"
TYPE_READ_EVERY_S = 1.0


class TypeTimeouts:
    """Each type's timeout_s, read from the store at most once a second: an operator's change
    applies to the attempts that start from a second later, and a busy worker saves a read
    per task."""

    def __init__(self, types: TypeStore) -> None:
        self._types = types
        self._read: dict[int, tuple[float, float]] = {}  # type id → (timeout_s, when read)

    async def of(self, type_id: int) -> float:
        now = time.monotonic()
        cached = self._read.get(type_id)
        if cached is not None and now - cached[1] < TYPE_READ_EVERY_S:
            return cached[0]
        timeout_s = float((await self._types.read(type_id)).timeout_s)
        self._read[type_id] = (timeout_s, now)
        return timeout_s


@dataclass
class WorkerState:
    """What every job of one worker process shares: settings, stores, handlers, running tasks."""

    settings: Settings
    tasks: TaskStore
    types: TypeStore
    definitions: dict[str, TaskDefinition[Any]]
    worker_id: str
    blocking: BlockingPool
    running: set[str] = field(default_factory=set)
    prefetched: Prefetched = field(default_factory=dict)  # shared with the arq worker's claims
    timeouts: TypeTimeouts = field(init=False)

    def __post_init__(self) -> None:
        self.timeouts = TypeTimeouts(self.types)


def worker_state(ctx: dict[str, Any]) -> WorkerState:
    state = ctx[STATE_KEY]
    assert isinstance(state, WorkerState), "worker state is filled in on_startup"
    return state
