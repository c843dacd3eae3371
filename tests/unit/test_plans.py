"""The plans a task change writes, as data: no Redis here. What each plan checks first (its named
guards) and what it writes, for the changes whose writes are easiest to get wrong."""

from datetime import UTC, datetime, timedelta

import msgspec

from jobcast.model.changes import Finish, RequestCancel, Start, TaskUpdate
from jobcast.model.tasks import Event, EventKind, Task, TaskStatus, new_task
from jobcast.model.transitions import apply
from jobcast.store import keys
from jobcast.store.atomic import ABSENT
from jobcast.store.envelope import NO_EVENT, decode_envelope
from jobcast.store.queue import ARQ_FUNCTION, PRIORITY_LIMIT, WAKE, job_id_for, queue_score
from jobcast.store.stored import Stored
from jobcast.store.task_plans import (
    DEFERRED,
    IDEMPOTENCY_KEY,
    JOB,
    SEQ,
    TYPES_VERSION,
    Limits,
    change_plan,
    create_plan,
    promote_plan,
)

LIMITS = Limits(cancel_grace_ms=3000, history_max=5, idempotency_ttl_s=60)
AT = datetime(2026, 1, 1, tzinfo=UTC)


def fresh(priority: int = 10) -> tuple[Task, Event]:
    return new_task(task_type="exports.pdf", task_type_id=3, parameters={"copies": 2}, priority=priority,
                    metadata={}, owner="alice", max_attempts=2, at=AT)  # fmt: skip


def commands(writes: list[list[str]], name: str) -> list[list[str]]:
    return [write for write in writes if write[0] == name]


def published(writes: list[list[str]]) -> list[dict[str, object]]:
    """The envelopes a plan publishes on the events channel, decoded."""
    envelopes = [decode_envelope(w[2]) for w in commands(writes, "PUBLISH") if w[1] == keys.EVENTS_CHANNEL]
    return [msgspec.json.decode(bytes(envelope.event)) for envelope in envelopes]


def test_a_new_task_is_guarded_by_name_and_queued_in_one_plan() -> None:
    task, event = fresh()
    job = job_id_for(task.id, 1)
    plan = create_plan(
        task, event, rank=7, job_id=job, idempotency_key="idem", types_version=4, limits=LIMITS
    )
    assert [(g.name, g.expected) for g in plan.guards] == [
        (SEQ, ABSENT),
        (IDEMPOTENCY_KEY, ABSENT),
        (TYPES_VERSION, "4"),
    ]
    assert ["ZADD", keys.ARQ_QUEUE, str(queue_score(10, 7)), job] in plan.writes
    assert WAKE in plan.writes
    (payload,) = [w for w in commands(plan.writes, "SET") if w[1] == keys.arq_job(job)]
    job_payload = msgspec.json.decode(payload[2])
    assert (job_payload["f"], job_payload["a"]) == (ARQ_FUNCTION, [task.id])
    assert ["SET", "idem", task.id, "EX", "60"] in plan.writes
    assert published(plan.writes) == [msgspec.to_builtins(event)]


def test_without_an_idempotency_key_or_types_version_only_the_seq_is_guarded() -> None:
    task, event = fresh()
    plan = create_plan(
        task, event, rank=1, job_id="", idempotency_key=None, types_version=None, limits=LIMITS
    )
    assert [g.name for g in plan.guards] == [SEQ]
    assert all(write[1] != keys.ARQ_QUEUE for write in commands(plan.writes, "ZADD"))  # no job


def test_a_types_version_of_zero_expects_no_version_key_at_all() -> None:
    task, event = fresh()
    plan = create_plan(task, event, rank=1, job_id="", idempotency_key=None, types_version=0, limits=LIMITS)
    assert (plan.guards[-1].name, plan.guards[-1].expected) == (TYPES_VERSION, ABSENT)


def test_a_change_is_guarded_by_the_seq_and_the_job_it_was_planned_on() -> None:
    task, _ = fresh()
    before = Stored(task, rank=3, job=job_id_for(task.id, 1))
    started, event = apply(task, Start(1, worker="w1"), AT)
    assert event is not None
    plan = change_plan(before, started, event, by_attempt=True, limits=LIMITS)
    assert [(g.name, g.expected) for g in plan.guards] == [(SEQ, "1"), (JOB, before.job)]
    assert ["SADD", keys.worker_tasks("w1"), task.id] in plan.writes
    moved = {w[1] for w in commands(plan.writes, "ZREM")} & set(keys.status_indexes("pending", 3, "alice"))
    assert moved == set(keys.status_indexes("pending", 3, "alice"))


def test_a_traceback_is_published_only_in_the_full_event() -> None:
    task, _ = fresh()
    running, _ = apply(task, Start(1, worker="w1"), AT)
    failed, event = apply(
        running, Finish(1, TaskStatus.FAILED, error_message="boom", traceback="Traceback..."), AT
    )
    assert event is not None
    plan = change_plan(Stored(running, 3, "job"), failed, event, by_attempt=True, limits=LIMITS)
    (publish,) = [w for w in commands(plan.writes, "PUBLISH") if w[1] == keys.EVENTS_CHANNEL]
    envelope = decode_envelope(publish[2])
    assert "traceback" not in msgspec.json.decode(bytes(envelope.event))
    assert envelope.full_event != NO_EVENT
    assert msgspec.json.decode(bytes(envelope.full_event))["traceback"] == "Traceback..."
    assert (envelope.kind, envelope.seq, envelope.owner) == (EventKind.FAILED, event.seq, "alice")


def test_cancelling_a_running_task_aborts_its_job_and_sets_a_deadline() -> None:
    task, _ = fresh()
    running, _ = apply(task, Start(1, worker="w1"), AT)
    asked, event = apply(running, RequestCancel(), AT + timedelta(seconds=1))
    assert event is not None
    plan = change_plan(Stored(running, 3, "job-1"), asked, event, by_attempt=False, limits=LIMITS)
    at_ms = int((AT + timedelta(seconds=1)).timestamp() * 1000)
    assert ["ZADD", keys.ARQ_ABORTS, str(at_ms), "job-1"] in plan.writes
    assert ["ZADD", keys.CANCEL_DEADLINES, str(at_ms + LIMITS.cancel_grace_ms), task.id] in plan.writes


def test_a_pending_task_whose_priority_changes_moves_in_the_queue() -> None:
    task, _ = fresh(priority=10)
    edited, event = apply(task, TaskUpdate(priority=1), AT)
    assert event is not None
    plan = change_plan(Stored(task, 5, "job-1"), edited, event, by_attempt=False, limits=LIMITS)
    assert ["ZADD", keys.ARQ_QUEUE, "XX", str(queue_score(1, 5)), "job-1"] in plan.writes


def test_a_history_past_its_limit_is_trimmed_in_the_same_plan() -> None:
    task, _ = fresh()
    task = msgspec.structs.replace(task, seq=LIMITS.history_max)
    edited, event = apply(task, TaskUpdate(metadata={"a": 1}), AT)
    assert event is not None
    assert event.seq == LIMITS.history_max + 1
    plan = change_plan(Stored(task, 5, ""), edited, event, by_attempt=False, limits=LIMITS)
    assert ["LTRIM", keys.task_events(task.id), str(-LIMITS.history_max), "-1"] in plan.writes


def test_promoting_a_deferred_job_takes_it_off_the_deferred_set_last() -> None:
    task, _ = fresh(priority=2)
    plan = promote_plan(Stored(task, 9, "job-9"))
    assert [g.name for g in plan.guards] == [SEQ, JOB, DEFERRED]
    assert plan.guards[-1].command == ["ZREM", keys.DEFERRED, "job-9"]
    assert plan.writes == [["ZADD", keys.ARQ_QUEUE, str(queue_score(2, 9)), "job-9"], WAKE]


def test_queue_scores_order_by_priority_then_by_rank_and_are_all_ready() -> None:
    scores = [queue_score(priority, rank) for priority in (1, 2, 1000) for rank in (1, 2, 2**40)]
    assert scores == sorted(scores)
    assert all(score < 0 for score in scores)  # below arq's "now": every job is ready at once
    assert queue_score(PRIORITY_LIMIT - 1, 2**42) < 0
