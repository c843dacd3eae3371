"""What each task change writes to Redis, as data: pure functions from a change to a Plan.

A Plan is run by lua/check_then_write.lua in one atomic step: every guard must read its
expected value, then every write runs. So the record, its `seq`, its history, its indexes,
its arq job and the published event can never disagree.
"""

from collections.abc import Iterable

import msgspec

from jobcast.model.tasks import ACTIVE, TERMINAL, Event, EventKind, Task, TaskStatus
from jobcast.store import counters, keys, queue
from jobcast.store.atomic import ABSENT, Command, Guard, Plan, encode
from jobcast.store.envelope import encode_envelope, envelope_for
from jobcast.store.queue import WAKE, job_id_for, queue_score
from jobcast.store.stored import Stored


class Limits(msgspec.Struct, frozen=True):
    """Settings the plans need: how long a cancel may take, how much history a task keeps."""

    cancel_grace_ms: int
    history_max: int
    idempotency_ttl_s: int


# The guards' names, which a caller tells failures apart by.
SEQ = "seq"  # the task is the version the change was planned on (or, ABSENT, does not exist)
JOB = "job"  # the task's arq job is the one the change was planned with
IDEMPOTENCY_KEY = "idempotency key"  # unused so far; what it found is the task that used it
TYPES_VERSION = "types version"  # no type was written since the submission was checked
DEFERRED = "deferred"  # the job still waits out its backoff: this promoter takes it


def _seq_guard(task: Task, expected: str) -> Guard:
    return Guard(SEQ, expected, ["HGET", keys.task(task.id), "seq"])


def _current(before: Stored) -> list[Guard]:
    """The task is still as read: its seq and (a reissue replaces it without a new seq) its job."""
    return [
        _seq_guard(before.task, str(before.task.seq)),
        Guard(JOB, before.job, ["HGET", keys.task(before.task.id), "job"]),
    ]


def create_plan(
    task: Task,
    event: Event,
    rank: int,
    job_id: str,
    idempotency_key: str | None,
    types_version: int | None,
    limits: Limits,
) -> Plan:
    """A new task: record, first event, indexes, its arq job (if any) and the idempotency key.
    With `types_version`, the last guard holds the task to the copy of its type it was checked
    against: no type was written since."""
    guards = [_seq_guard(task, ABSENT)]
    writes = [["HSET", keys.task(task.id), "rank", str(rank), "job", job_id]]
    writes += _record_and_event(task, event, limits)
    writes += [["ZADD", index, str(rank), task.id] for index in _indexes(task)]
    writes += counters.submitted(task, event)
    if job_id:
        writes += _enqueue(job_id, task, rank, event)
    if idempotency_key is not None:
        guards.append(Guard(IDEMPOTENCY_KEY, ABSENT, ["GET", idempotency_key]))
        writes.append(["SET", idempotency_key, task.id, "EX", str(limits.idempotency_ttl_s)])
    if types_version is not None:
        expected = str(types_version) if types_version else ABSENT
        guards.append(Guard(TYPES_VERSION, expected, ["GET", keys.TYPES_VERSION]))
    return Plan(guards, writes)


def change_plan(before: Stored, task: Task, event: Event, *, by_attempt: bool, limits: Limits) -> Plan:
    """An existing task moves from `before` to `task`, emitting `event`.

    `by_attempt` says the running attempt itself made the change, so its job needs no abort.
    """
    old = before.task
    guards = _current(before)
    if event.event is EventKind.DELETED:
        return Plan(guards, _delete(before, task, event, by_attempt))
    writes = _job_writes(before, task, event)
    writes += _record_and_event(task, event, limits)
    if task.status is not old.status:
        writes += _status_moves(before, task, event)
    writes += _claims(old, task)
    if task.cancel_requested and not old.cancel_requested:
        writes += queue.abort(before.job, _ms(event))
        deadline_ms = _ms(event) + limits.cancel_grace_ms
        writes.append(["ZADD", keys.CANCEL_DEADLINES, str(deadline_ms), task.id])
    if task.status in TERMINAL and old.status in ACTIVE:
        writes += _end_job(before, event, by_attempt)
        writes += counters.finished(old, task, event)
    return Plan(guards, writes)


def reissue_plan(before: Stored, job_id: str, enqueue_ms: int, due_ms: int | None) -> Plan:
    """The pending task's job is replaced by a new one (due at `due_ms`, or at once): no event."""
    task = before.task
    writes = [["HSET", keys.task(task.id), "job", job_id], *queue.drop(before.job)]
    writes += queue.enqueue(job_id, task, before.rank, enqueue_ms, due_ms)
    return Plan(_current(before), writes)


def promote_plan(before: Stored) -> Plan:
    """The task's deferred job has waited out its backoff: into arq's queue, in priority order.
    The last guard takes it off the deferred set, so only one promoter moves it."""
    score = queue_score(before.task.priority, before.rank)
    guards = [*_current(before), Guard(DEFERRED, "1", ["ZREM", keys.DEFERRED, before.job])]
    return Plan(guards, [["ZADD", keys.ARQ_QUEUE, str(score), before.job], WAKE])


def expire_plan(before: Stored) -> Plan:
    """A finished task past its retention: record, history and index entries go, silently."""
    task = before.task
    guards = [_seq_guard(task, str(task.seq))]
    writes = [["DEL", keys.task(task.id), keys.task_events(task.id)], ["ZREM", keys.FINISHED, task.id]]
    writes += [["ZREM", index, task.id] for index in _indexes(task)]
    return Plan(guards, writes)


def job_after(before: Stored, task: Task, event: Event) -> str:
    """The task's arq job after a change: a task that becomes pending again gets a fresh one."""
    if before.job and before.task.status is not TaskStatus.PENDING and task.status is TaskStatus.PENDING:
        return job_id_for(task.id, event.seq)
    return before.job


def _job_writes(before: Stored, task: Task, event: Event) -> list[Command]:
    """A new job replaces the old one; a pending task whose priority changed moves in the queue."""
    job_id = job_after(before, task, event)
    if job_id != before.job:
        return [
            ["HSET", keys.task(task.id), "job", job_id],
            *queue.drop(before.job),
            *_enqueue(job_id, task, before.rank, event),
        ]
    if job_id and task.status is TaskStatus.PENDING and task.priority != before.task.priority:
        return [["ZADD", keys.ARQ_QUEUE, "XX", str(queue_score(task.priority, before.rank)), job_id]]
    return []


def _status_moves(before: Stored, task: Task, event: Event) -> list[Command]:
    """Index entries follow the status; finished tasks are listed for retention."""
    # The indexes of any status hold the task whatever its status: only the others move.
    type_id, owner, rank = task.task_type_id, task.owner, str(before.rank)
    writes = [["ZREM", index, task.id] for index in keys.status_indexes(before.task.status, type_id, owner)]
    writes += [["ZADD", index, rank, task.id] for index in keys.status_indexes(task.status, type_id, owner)]
    if task.status in TERMINAL:
        writes.append(["ZADD", keys.FINISHED, str(_ms(event)), task.id])
    elif before.task.status in TERMINAL:
        writes.append(["ZREM", keys.FINISHED, task.id])
    return writes


def _claims(old: Task, task: Task) -> list[Command]:
    """Each worker's set of the tasks it runs, for recovery when it is lost."""
    if old.worker == task.worker:
        return []
    writes = [["SREM", keys.worker_tasks(old.worker), task.id]] if old.worker else []
    if task.worker:
        writes.append(["SADD", keys.worker_tasks(task.worker), task.id])
    return writes


def _delete(before: Stored, task: Task, event: Event, by_attempt: bool) -> list[Command]:
    writes = [["DEL", keys.task(task.id), keys.task_events(task.id)], ["ZREM", keys.FINISHED, task.id]]
    writes += [["ZREM", index, task.id] for index in _indexes(before.task)]
    writes += _claims(before.task, msgspec.structs.replace(before.task, worker=None))
    if before.task.status in ACTIVE:
        writes += _end_job(before, event, by_attempt)
        writes += counters.deleted_while_active(task, event)
    return [*writes, _publish(task, event), counters.published(event)]


def _record_and_event(task: Task, event: Event, limits: Limits) -> list[Command]:
    doc = encode(task).decode()
    writes = [
        ["HSET", keys.task(task.id), "doc", doc, "seq", str(task.seq)],
        ["RPUSH", keys.task_events(task.id), encode(event).decode()],
        _publish(task, event),
        counters.published(event),
    ]
    if event.seq > limits.history_max:  # a history holds one event per seq: only then too long
        writes.append(["LTRIM", keys.task_events(task.id), str(-limits.history_max), "-1"])
    return writes


def _publish(task: Task, event: Event) -> Command:
    return ["PUBLISH", keys.EVENTS_CHANNEL, encode_envelope(envelope_for(task, event)).decode()]


def _enqueue(job_id: str, task: Task, rank: int, event: Event) -> list[Command]:
    due_ms = None if event.run_after is msgspec.UNSET else int(event.run_after.timestamp() * 1000)
    return queue.enqueue(job_id, task, rank, _ms(event), due_ms)


def _end_job(before: Stored, event: Event, by_attempt: bool) -> list[Command]:
    """A finished task's job never runs again. A job running elsewhere is also aborted; the
    attempt that ends the task itself is left for arq to finish."""
    writes = [["ZREM", keys.CANCEL_DEADLINES, before.task.id]]
    if by_attempt and before.task.status is TaskStatus.RUNNING:
        return writes
    if before.task.status is TaskStatus.RUNNING:
        writes += queue.abort(before.job, _ms(event))
    return writes + queue.drop(before.job)


def _ms(event: Event) -> int:
    return int(event.at.timestamp() * 1000)


def _indexes(task: Task) -> Iterable[str]:
    return keys.task_indexes(task.status, task.task_type_id, task.owner)
