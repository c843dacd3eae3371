"""Logs: one JSON object per line on stderr. A line written while a task runs carries the task's
`task_id`, `type` and `attempt`, whichever logger wrote it (jobcast's, arq's, a handler's own)."""

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

TASK_FIELDS = ("task_id", "type", "attempt")

# Each arq job runs in an asyncio task of its own, which copies the context: a job's fields are
# seen by everything it awaits or spawns, and by nothing of its neighbours.
_running_task: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "jobcast_running_task", default=None
)
_encode = msgspec.json.Encoder().encode


@contextlib.contextmanager
def task_logging(task_id: str, task_type: str, attempt: int) -> Iterator[None]:
    """Every line logged inside names this task, its type and attempt."""
    token = _running_task.set({"task_id": task_id, "type": task_type, "attempt": attempt})
    try:
        yield
    finally:
        _running_task.reset(token)


class TaskFields(logging.Filter):
    """Adds the running task's fields to a record (those it does not carry already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_running_task.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in TASK_FIELDS:
            if (value := getattr(record, name, None)) is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encode(line).decode()


def configure_logging(level: str | int) -> None:
    """Route every logger (uvicorn's and arq's too) through one JSON handler on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TaskFields())
    logging.basicConfig(
        level=level.upper() if isinstance(level, str) else level, handlers=[handler], force=True
    )
