"""What a worker process holds, kept in arq's ctx and read through one typed accessor."""

from dataclasses import dataclass, field
from typing import Any

from src.settings import Settings
from src.task_store import TaskStore
from src.type_store import TypeStore
from src.workers.blocking import BlockingPool
from src.workers.definition import TaskDefinition

STATE_KEY = "jobcast"


@dataclass
class WorkerState:
    settings: Settings
    tasks: TaskStore
    types: TypeStore
    definitions: dict[str, TaskDefinition[Any]]
    worker_id: str
    blocking: BlockingPool
    running: set[str] = field(default_factory=set)


def worker_state(ctx: dict[str, Any]) -> WorkerState:
    state = ctx[STATE_KEY]
    assert isinstance(state, WorkerState), "worker state is filled in on_startup"
    return state
