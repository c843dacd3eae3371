"""Cluster-wide counters, as writes added to the very plan that makes the change they count.

They live in Redis, so every API instance's /metrics and /api/stats report the same totals; and
being part of the change's own atomic step, a count can never miss or double a change (a write
whose reply was lost is recognised by the store, not run again). No extra round trip either.

`keys.TALLIES` is one hash. Its fields join their parts with `|`, which type names and event
kinds never contain: `submitted|TYPE`, `STATUS|TYPE` for each final status, `events|KIND`,
`duration|STATUS|TYPE|LE` (how many attempts that ended the task ran up to LE seconds, the
smallest bound that fits: not cumulative) and `duration_ms|STATUS|TYPE` (their sum).
"""

from datetime import datetime

from jobcast.model.tasks import Event, Task, TaskStatus
from jobcast.store import keys

Command = list[str]

SEP = "|"
SUBMITTED = "submitted"
EVENTS = "events"
DURATION = "duration"
DURATION_MS = "duration_ms"
FINAL_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
DURATION_BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
INF = "+Inf"
THROUGHPUT_MINUTES = 15
THROUGHPUT_TTL_S = (THROUGHPUT_MINUTES + 5) * 60  # a bucket outlives the window it is read in


def field(*parts: str) -> str:
    return SEP.join(parts)


def bucket_label(bound_s: float) -> str:
    return f"{bound_s:g}"


def bucket_of(seconds: float) -> str:
    """The smallest histogram bound that `seconds` fits under."""
    return next((bucket_label(b) for b in DURATION_BUCKETS_S if seconds <= b), INF)


def minute_of(at: datetime) -> int:
    return int(at.timestamp()) // 60


def submitted(task: Task, event: Event) -> list[Command]:
    return [_count(field(SUBMITTED, task.type)), *_per_minute(SUBMITTED, event.at)]


def finished(before: Task, task: Task, event: Event) -> list[Command]:
    """A task reached a final status; when it got there from running, how long that attempt ran."""
    status = str(task.status)
    writes = [_count(field(status, task.type)), *_per_minute(status, event.at)]
    if before.status is TaskStatus.RUNNING and task.started_at is not None and task.completed_at is not None:
        seconds = max(0.0, (task.completed_at - task.started_at).total_seconds())
        writes += [
            _count(field(DURATION, status, task.type, bucket_of(seconds))),
            _count(field(DURATION_MS, status, task.type), round(seconds * 1000)),
        ]
    return writes


def deleted_while_active(task: Task, event: Event) -> list[Command]:
    """A delete cancels an active task on its way out: it counts as cancelled."""
    status = str(TaskStatus.CANCELLED)
    return [_count(field(status, task.type)), *_per_minute(status, event.at)]


def published(event: Event) -> Command:
    return _count(field(EVENTS, event.event))


def _count(name: str, amount: int = 1) -> Command:
    return ["HINCRBY", keys.TALLIES, name, str(amount)]


def _per_minute(name: str, at: datetime) -> list[Command]:
    key = keys.throughput(minute_of(at))
    return [["HINCRBY", key, name, "1"], ["EXPIRE", key, str(THROUGHPUT_TTL_S)]]
