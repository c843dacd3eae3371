"""What each task change writes to Redis, as data: pure functions from a change to a Plan.

A Plan is run by lua/check_then_write.lua in one atomic step: every guard must read its
expected value, then every write runs. So the record, its `seq`, its history, its indexes,
its arq job and the published event can never disagree.
"""

from collections.abc import Iterable

import msgspec
from arq.jobs import serialize_job

from src import keys
from src.events.envelope import Envelope, encode_envelope, event_frame
from src.tasks import ACTIVE, RETRYABLE, TERMINAL, Event, EventKind, Task, TaskStatus

ARQ_FUNCTION = "jobcast.run"
ABSENT = ""  # a guard expecting ABSENT requires the key or field not to exist

encode = msgspec.json.Encoder().encode
Command = list[str]


class Plan(msgspec.Struct):
    guards: list[Command]  # [expected, command, args...]
    writes: list[Command]


class Stored(msgspec.Struct, frozen=True):
    """A task as read from its hash: the record plus the fields only the store needs."""

    task: Task
    rank: int
    job: str  # id of the task's latest arq job; empty for external tasks


def job_id_for(task_id: str, seq: int) -> str:
    """A fresh arq job id for each run of a task, so a retried task never meets its old job."""
    return f"{task_id}:{seq}"


def create_plan(
    task: Task, event: Event, rank: int, job_id: str, idempotency_key: str | None, idempotency_ttl_s: int
) -> Plan:
    """A new task: record, first event, indexes, its arq job (if any) and the idempotency key."""
    guards = [[ABSENT, "HGET", keys.task(task.id), "seq"]]
    writes = [["HSET", keys.task(task.id), "rank", str(rank), "job", job_id]]
    writes += _record_and_event(task, event)
    writes += [["ZADD", index, str(rank), task.id] for index in _indexes(task)]
    if job_id:
        writes += _enqueue(job_id, task, event)
    if idempotency_key is not None:
        guards.append([ABSENT, "GET", idempotency_key])
        writes.append(["SET", idempotency_key, task.id, "EX", str(idempotency_ttl_s)])
    return Plan(guards, writes)


def change_plan(
    before: Stored, task: Task, event: Event, *, by_attempt: bool, cancel_deadline_ms: int
) -> Plan:
    """An existing task moves from `before` to `task`, emitting `event`.

    `by_attempt` says the running attempt itself made the change, so its job needs no abort.
    """
    old = before.task
    guards = [[str(old.seq), "HGET", keys.task(task.id), "seq"]]
    if event.event is EventKind.DELETED:
        return Plan(guards, _delete(before, task, event, by_attempt))
    writes: list[Command] = []
    job_id = job_after(before, task, event)
    if job_id != before.job:
        writes += [["HSET", keys.task(task.id), "job", job_id], *_enqueue(job_id, task, event)]
    writes += _record_and_event(task, event)
    if task.status is not old.status:
        writes += [["ZREM", index, task.id] for index in _indexes(old)]
        writes += [["ZADD", index, str(before.rank), task.id] for index in _indexes(task)]
    if task.cancel_requested and not old.cancel_requested:
        writes += _abort(before.job, event)
        writes.append(["ZADD", keys.CANCEL_DEADLINES, str(cancel_deadline_ms), task.id])
    if task.status in TERMINAL and old.status in ACTIVE:
        writes += _end_job(before, event, by_attempt)
    return Plan(guards, writes)


def job_after(before: Stored, task: Task, event: Event) -> str:
    """The task's arq job after a change: a retried worker task gets a fresh one."""
    if before.job and before.task.status in RETRYABLE and task.status is TaskStatus.PENDING:
        return job_id_for(task.id, event.seq)
    return before.job


def _delete(before: Stored, task: Task, event: Event, by_attempt: bool) -> list[Command]:
    writes = [["DEL", keys.task(task.id), keys.task_events(task.id)]]
    writes += [["ZREM", index, task.id] for index in _indexes(before.task)]
    if before.task.status in ACTIVE:
        writes += _end_job(before, event, by_attempt)
    writes.append(_publish(task, event))
    return writes


def _record_and_event(task: Task, event: Event) -> list[Command]:
    doc = encode(task).decode()
    return [
        ["HSET", keys.task(task.id), "doc", doc, "seq", str(task.seq)],
        ["RPUSH", keys.task_events(task.id), encode(event).decode()],
        _publish(task, event),
    ]


def _publish(task: Task, event: Event) -> Command:
    envelope = Envelope(
        task_id=task.id,
        seq=event.seq,
        task_type=task.type,
        owner=task.owner,
        event=event.event,
        frame=msgspec.Raw(event_frame(encode(event))),
    )
    return ["PUBLISH", keys.EVENTS_CHANNEL, encode_envelope(envelope).decode()]


def _enqueue(job_id: str, task: Task, event: Event) -> list[Command]:
    enqueue_ms = _ms(event)
    payload = serialize_job(ARQ_FUNCTION, (task.id,), {}, None, enqueue_ms, serializer=encode)
    return [
        ["SET", keys.arq_job(job_id), payload.decode()],
        ["ZADD", keys.ARQ_QUEUE, str(enqueue_ms), job_id],
    ]


def _end_job(before: Stored, event: Event, by_attempt: bool) -> list[Command]:
    """A finished task's job never runs again: dequeue it, or abort it if it is running."""
    writes = [["ZREM", keys.CANCEL_DEADLINES, before.task.id]]
    if not before.job:
        return writes
    if before.task.status is TaskStatus.PENDING:
        return [*writes, ["ZREM", keys.ARQ_QUEUE, before.job], ["DEL", keys.arq_job(before.job)]]
    return writes if by_attempt else [*writes, *_abort(before.job, event)]


def _abort(job_id: str, event: Event) -> list[Command]:
    """Ask arq to cancel the running job; scored by time so stale entries can be swept."""
    if not job_id:
        return []
    return [["ZADD", keys.ARQ_ABORTS, str(_ms(event)), job_id]]


def _ms(event: Event) -> int:
    return int(event.at.timestamp() * 1000)


def _indexes(task: Task) -> Iterable[str]:
    return keys.task_indexes(task.status, task.task_type_id, task.owner)
