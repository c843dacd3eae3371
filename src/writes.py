"""What each task change writes to Redis, as data: pure functions from a change to a Plan.

A Plan is run by lua/check_then_write.lua in one atomic step: every guard must read its
expected value, then every write runs. So the record, its `seq`, its history, its indexes,
its arq job and the published event can never disagree.
"""

from collections.abc import Iterable

import msgspec
from arq.jobs import serialize_job

from src import keys, tallies
from src.events.envelope import NO_FRAME, Envelope, encode_envelope, event_frame
from src.tasks import ACTIVE, TERMINAL, Event, EventKind, Task, TaskStatus

ARQ_FUNCTION = "jobcast.run"
ABSENT = ""  # a guard expecting ABSENT requires the key or field not to exist
# arq starts the queued job with the lowest score among those scored at or below "now". Scoring
# every job below zero makes all of them ready at once, ordered by priority band, then by rank
# (submission order) within a band. Bands of 2**43 keep every score an exact float.
PRIORITY_BAND = 2**43
PRIORITY_LIMIT = 1001

encode = msgspec.json.Encoder().encode
Command = list[str]
WAKE: Command = ["PUBLISH", keys.WAKE_CHANNEL, ""]  # workers look at the queue and aborts at once


class Plan(msgspec.Struct):
    guards: list[Command]  # [expected, command, args...]
    writes: list[Command]


class Stored(msgspec.Struct, frozen=True):
    """A task as read from its hash: the record plus the fields only the store needs."""

    task: Task
    rank: int
    job: str  # id of the task's latest arq job; empty for external tasks


class Limits(msgspec.Struct, frozen=True):
    """Settings the plans need: how long a cancel may take, how much history a task keeps."""

    cancel_grace_ms: int
    history_max: int
    idempotency_ttl_s: int


def job_id_for(task_id: str, seq: int, reissue_ms: int | None = None) -> str:
    """A fresh arq job id for each run of a task, so a retried task never meets its old job."""
    return f"{task_id}:{seq}" if reissue_ms is None else f"{task_id}:{seq}:{reissue_ms}"


def queue_score(priority: int, rank: int) -> int:
    """The job's score in arq's queue: lower priority numbers first, then first come."""
    return (priority - PRIORITY_LIMIT) * PRIORITY_BAND + rank


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
    guards = [[ABSENT, "HGET", keys.task(task.id), "seq"]]
    writes = [["HSET", keys.task(task.id), "rank", str(rank), "job", job_id]]
    writes += _record_and_event(task, event, limits)
    writes += [["ZADD", index, str(rank), task.id] for index in _indexes(task)]
    writes += tallies.submitted(task, event)
    if job_id:
        writes += _enqueue(job_id, task, rank, event)
    if idempotency_key is not None:
        guards.append([ABSENT, "GET", idempotency_key])
        writes.append(["SET", idempotency_key, task.id, "EX", str(limits.idempotency_ttl_s)])
    if types_version is not None:
        guards.append([str(types_version) if types_version else ABSENT, "GET", keys.TYPES_VERSION])
    return Plan(guards, writes)


def change_plan(before: Stored, task: Task, event: Event, *, by_attempt: bool, limits: Limits) -> Plan:
    """An existing task moves from `before` to `task`, emitting `event`.

    `by_attempt` says the running attempt itself made the change, so its job needs no abort.
    """
    old = before.task
    # The job guard too: a reissue replaces the job without a new seq.
    guards = [
        [str(old.seq), "HGET", keys.task(task.id), "seq"],
        [before.job, "HGET", keys.task(task.id), "job"],
    ]
    if event.event is EventKind.DELETED:
        return Plan(guards, _delete(before, task, event, by_attempt))
    writes = _job_writes(before, task, event)
    writes += _record_and_event(task, event, limits)
    if task.status is not old.status:
        writes += _status_moves(before, task, event)
    writes += _claims(old, task)
    if task.cancel_requested and not old.cancel_requested:
        writes += _abort(before.job, event)
        deadline_ms = _ms(event) + limits.cancel_grace_ms
        writes.append(["ZADD", keys.CANCEL_DEADLINES, str(deadline_ms), task.id])
    if task.status in TERMINAL and old.status in ACTIVE:
        writes += _end_job(before, event, by_attempt)
        writes += tallies.finished(old, task, event)
    return Plan(guards, writes)


def reissue_plan(before: Stored, job_id: str, enqueue_ms: int, due_ms: int | None) -> Plan:
    """The pending task's job is replaced by a new one (due at `due_ms`, or at once): no event."""
    task = before.task
    guards = [
        [str(task.seq), "HGET", keys.task(task.id), "seq"],
        [before.job, "HGET", keys.task(task.id), "job"],
    ]
    writes = [["HSET", keys.task(task.id), "job", job_id], *_drop_job(before.job)]
    writes += _enqueue_at(job_id, task, before.rank, enqueue_ms, due_ms)
    return Plan(guards, writes)


def promote_plan(before: Stored) -> Plan:
    """The task's deferred job has waited out its backoff: into arq's queue, in priority order.
    The last guard takes it off the deferred set, so only one promoter moves it."""
    score = queue_score(before.task.priority, before.rank)
    guards = [
        [str(before.task.seq), "HGET", keys.task(before.task.id), "seq"],  # the priority read is current
        [before.job, "HGET", keys.task(before.task.id), "job"],
        ["1", "ZREM", keys.DEFERRED, before.job],
    ]
    return Plan(guards, [["ZADD", keys.ARQ_QUEUE, str(score), before.job], WAKE])


def expire_plan(before: Stored) -> Plan:
    """A finished task past its retention: record, history and index entries go, silently."""
    task = before.task
    guards = [[str(task.seq), "HGET", keys.task(task.id), "seq"]]
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
            *_drop_job(before.job),
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
        writes += tallies.deleted_while_active(task, event)
    return [*writes, _publish(task, event), tallies.published(event)]


def _record_and_event(task: Task, event: Event, limits: Limits) -> list[Command]:
    doc = encode(task).decode()
    writes = [
        ["HSET", keys.task(task.id), "doc", doc, "seq", str(task.seq)],
        ["RPUSH", keys.task_events(task.id), encode(event).decode()],
        _publish(task, event),
        tallies.published(event),
    ]
    if event.seq > limits.history_max:  # a history holds one event per seq: only then too long
        writes.append(["LTRIM", keys.task_events(task.id), str(-limits.history_max), "-1"])
    return writes


def _publish(task: Task, event: Event) -> Command:
    frame = msgspec.Raw(event_frame(encode(event)))
    full_frame = NO_FRAME
    if event.traceback is not msgspec.UNSET:
        full_frame = frame
        frame = msgspec.Raw(event_frame(encode(msgspec.structs.replace(event, traceback=msgspec.UNSET))))
    envelope = Envelope(
        task_id=task.id,
        seq=event.seq,
        task_type=task.type,
        owner=task.owner,
        event=event.event,
        frame=frame,
        full_frame=full_frame,
    )
    return ["PUBLISH", keys.EVENTS_CHANNEL, encode_envelope(envelope).decode()]


def _enqueue(job_id: str, task: Task, rank: int, event: Event) -> list[Command]:
    due_ms = None if event.run_after is msgspec.UNSET else int(event.run_after.timestamp() * 1000)
    return _enqueue_at(job_id, task, rank, _ms(event), due_ms)


def _enqueue_at(job_id: str, task: Task, rank: int, enqueue_ms: int, due_ms: int | None) -> list[Command]:
    """The job's payload names only the task; it waits in DEFERRED until due, else queues at once."""
    payload = serialize_job(ARQ_FUNCTION, (task.id,), {}, None, enqueue_ms, serializer=encode)
    writes = [["SET", keys.arq_job(job_id), payload.decode()]]
    if due_ms is not None and due_ms > enqueue_ms:
        return [*writes, ["ZADD", keys.DEFERRED, str(due_ms), job_id]]
    return [*writes, ["ZADD", keys.ARQ_QUEUE, str(queue_score(task.priority, rank)), job_id], WAKE]


def _drop_job(job_id: str) -> list[Command]:
    """The job will never run: out of the queue and the deferred set, its keys gone."""
    if not job_id:
        return []
    return [
        ["ZREM", keys.ARQ_QUEUE, job_id],
        ["ZREM", keys.DEFERRED, job_id],
        ["DEL", keys.arq_job(job_id), keys.arq_in_progress(job_id)],
    ]


def _end_job(before: Stored, event: Event, by_attempt: bool) -> list[Command]:
    """A finished task's job never runs again. A job running elsewhere is also aborted; the
    attempt that ends the task itself is left for arq to finish."""
    writes = [["ZREM", keys.CANCEL_DEADLINES, before.task.id]]
    if by_attempt and before.task.status is TaskStatus.RUNNING:
        return writes
    if before.task.status is TaskStatus.RUNNING:
        writes += _abort(before.job, event)
    return writes + _drop_job(before.job)


def _abort(job_id: str, event: Event) -> list[Command]:
    """Ask arq to cancel the running job; scored by time so stale entries can be swept."""
    if not job_id:
        return []
    return [["ZADD", keys.ARQ_ABORTS, str(_ms(event)), job_id], WAKE]


def _ms(event: Event) -> int:
    return int(event.at.timestamp() * 1000)


def _indexes(task: Task) -> Iterable[str]:
    return keys.task_indexes(task.status, task.task_type_id, task.owner)
