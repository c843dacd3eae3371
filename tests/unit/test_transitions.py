"""The pure transition function (CONTRACT.md §2, §3; STYLE.md rule 3), tested without Redis."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from jobcast.errors import InvalidTransition, StaleAttempt
from jobcast.model.changes import (
    Change,
    Delete,
    ExpireCancel,
    Finish,
    PatchRetry,
    ReportProgress,
    RequestCancel,
    Requeue,
    Retry,
    Start,
    TaskUpdate,
    WorkerLost,
)
from jobcast.model.tasks import (
    ACTIVE,
    FINISHED_EVENT,
    RETRYABLE,
    TERMINAL,
    Event,
    EventKind,
    Progress,
    Task,
    TaskStatus,
    new_task,
)
from jobcast.model.transitions import apply
from tests.helpers.transitions import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    fencing_refuses,
    is_current,
    is_stale,
    patches,
    progresses,
    texts,
    try_apply,
    values,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LEGAL_MOVES = {
    (PENDING, RUNNING),
    *((PENDING, end) for end in TERMINAL),
    *((RUNNING, end) for end in TERMINAL),
    (FAILED, PENDING),
    (CANCELLED, PENDING),
    (RUNNING, PENDING),  # only through Requeue, checked separately
}
FIXED_FIELDS = ("id", "type", "task_type_id", "parameters", "owner", "created_at", "status_url", "events_url")

encode = msgspec.json.encode


def at(step: int) -> datetime:
    return T0 + timedelta(seconds=step)


def fresh(max_attempts: int = 3) -> Task:
    task, _ = new_task(
        task_type="report",
        task_type_id=7,
        parameters={"rows": [1, 2]},
        priority=100,
        metadata={"team": "a"},
        owner="alice",
        max_attempts=max_attempts,
        at=T0,
    )
    return task


def run(task: Task, *changes: Change) -> tuple[Task, list[Event]]:
    """Apply changes one after another (each must be accepted), collecting the events."""
    events = []
    for step, change in enumerate(changes, start=1):
        task, event = apply(task, change, at(step))
        if event is not None:
            events.append(event)
    return task, events


def running(max_attempts: int = 3) -> Task:
    return run(fresh(max_attempts), Start(1))[0]


def finished(status: TaskStatus) -> Task:
    return run(fresh(), Start(1), Finish(1, status, error_message="boom"))[0]


def refused(task: Task, change: Change) -> InvalidTransition:
    """The change is refused and the task is left exactly as it was."""
    before = encode(task)
    with pytest.raises(InvalidTransition) as caught:
        apply(task, change, at(99))
    assert encode(task) == before
    return caught.value


# --- new_task -------------------------------------------------------------------------------


def test_new_task_is_pending_at_seq_1_with_its_created_event() -> None:
    task, event = new_task(
        task_type="report",
        task_type_id=7,
        parameters={},
        priority=5,
        metadata={},
        owner="bob",
        max_attempts=2,
        at=T0,
    )
    assert (task.status, task.seq, task.attempts, task.max_attempts) == (PENDING, 1, 0, 2)
    assert task.started_at is None
    assert task.completed_at is None
    assert task.progress is None
    assert (event.task_id, event.seq, event.event, event.status, event.attempt) == (
        task.id,
        1,
        EventKind.CREATED,
        PENDING,
        0,
    )
    assert task.status_url == f"/api/tasks/{task.id}/status"
    assert task.events_url == f"/api/tasks/{task.id}/events"
    assert task.id != fresh().id


# --- Start, ReportProgress, Finish, Requeue -------------------------------------------------


def test_start_runs_the_next_attempt() -> None:
    task, event = apply(fresh(), Start(1), at(1))
    assert (task.status, task.attempts, task.started_at, task.seq) == (RUNNING, 1, at(1), 2)
    assert event is not None
    assert (event.event, event.status, event.attempt, event.seq) == (EventKind.STARTED, RUNNING, 1, 2)


@pytest.mark.parametrize("attempt", [0, 2, 5])
def test_start_with_an_attempt_other_than_the_next_is_stale(attempt: int) -> None:
    assert isinstance(refused(fresh(), Start(attempt)), StaleAttempt)


@pytest.mark.parametrize("status", [RUNNING, COMPLETED, FAILED, CANCELLED])
def test_only_a_pending_task_starts(status: TaskStatus) -> None:
    task = running() if status is RUNNING else finished(status)
    refused(task, Start(task.attempts + 1))


def test_progress_from_the_current_attempt_is_recorded() -> None:
    progress = Progress(current=3, total=4, message="rows")
    task, event = apply(running(), ReportProgress(1, progress), at(5))
    assert task.progress == progress
    assert task.status is RUNNING
    assert event is not None
    assert (event.event, event.progress, event.seq) == (EventKind.PROGRESS, progress, task.seq)


def test_finish_completed_sets_result_and_completed_at() -> None:
    task, events = run(fresh(), Start(1), Finish(1, COMPLETED, result={"n": 1}))
    assert (task.status, task.result, task.completed_at, task.started_at) == (
        COMPLETED,
        {"n": 1},
        at(2),
        at(1),
    )
    assert events[-1].event is EventKind.COMPLETED
    assert events[-1].result == {"n": 1}


def test_finish_failed_keeps_error_and_traceback_in_the_event() -> None:
    task, events = run(fresh(), Start(1), Finish(1, FAILED, error_message="bad", traceback="tb"))
    assert (task.status, task.error_message) == (FAILED, "bad")
    assert (events[-1].event, events[-1].error_message, events[-1].traceback) == (
        EventKind.FAILED,
        "bad",
        "tb",
    )


def test_requeue_puts_a_running_task_back_to_pending() -> None:
    progress = Progress(current=1, total=2)
    task, events = run(
        fresh(), Start(1), ReportProgress(1, progress), Requeue(1, reason="error", error_message="x")
    )
    assert (task.status, task.progress, task.attempts, task.completed_at) == (PENDING, None, 1, None)
    assert (events[-1].event, events[-1].reason, events[-1].status) == (EventKind.RETRYING, "error", PENDING)
    task, _ = run(task, Start(2))
    assert (task.status, task.attempts) == (RUNNING, 2)


@pytest.mark.parametrize(
    "change",
    [
        ReportProgress(1, Progress(current=1)),
        Finish(1, COMPLETED),
        Finish(1, FAILED),
        Requeue(1, reason="error"),
    ],
)
def test_writes_from_an_attempt_that_was_requeued_are_stale(change: Change) -> None:
    task, _ = run(fresh(), Start(1), Requeue(1, reason="worker stopped"), Start(2))
    assert isinstance(refused(task, change), StaleAttempt)


def test_a_stopped_worker_does_not_use_up_an_attempt() -> None:
    task, events = run(fresh(max_attempts=1), Start(1), Requeue(1, reason="worker stopped", refund=True))
    assert (task.status, task.attempts, task.max_attempts) == (PENDING, 1, 2)
    assert events[-1].reason == "worker stopped"
    task, _ = run(fresh(max_attempts=1), Start(1), Requeue(1, reason="error"))
    assert task.max_attempts == 1


@pytest.mark.parametrize(
    "change", [ReportProgress(1, Progress(current=1)), Finish(1, COMPLETED), Requeue(1, reason="x")]
)
def test_attempt_writes_on_a_pending_or_finished_task_are_stale(change: Change) -> None:
    assert isinstance(refused(fresh(), change), StaleAttempt)
    assert isinstance(refused(finished(CANCELLED), change), StaleAttempt)


def test_a_requeue_after_a_cancel_request_does_not_lose_the_cancel() -> None:
    """CONTRACT §2: a running task with a cancel request reaches `cancelled`; the attempt giving up
    (Requeue) must not put it back in the queue, where ExpireCancel no longer applies."""
    task, _ = run(fresh(), Start(1), RequestCancel())
    try:
        task, _ = apply(task, Requeue(1, reason="error", error_message="x"), at(10))
    except InvalidTransition:
        task, _ = apply(task, ExpireCancel(), at(11))  # refused: the grace expiry still cancels it
    assert task.status is CANCELLED


# --- RequestCancel and ExpireCancel -----------------------------------------------------------


def test_cancel_of_a_pending_task_is_immediate() -> None:
    task, event = apply(fresh(), RequestCancel(), at(1))
    assert (task.status, task.completed_at, task.cancel_requested) == (CANCELLED, at(1), False)
    assert event is not None
    assert (event.event, event.status) == (EventKind.CANCELLED, CANCELLED)


def test_cancel_of_a_running_task_is_a_request() -> None:
    task, event = apply(running(), RequestCancel(), at(5))
    assert (task.status, task.cancel_requested, task.completed_at) == (RUNNING, True, None)
    assert event is not None
    assert (event.event, event.cancel_requested, event.status) == (EventKind.UPDATED, True, RUNNING)
    again, none = apply(task, RequestCancel(), at(6))
    assert none is None
    assert again == task


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_cancel_of_a_finished_task_is_refused(status: TaskStatus) -> None:
    refused(finished(status), RequestCancel())


def test_expire_cancel_cancels_a_task_still_running_after_its_request() -> None:
    task, events = run(fresh(), Start(1), RequestCancel(), ExpireCancel())
    assert (task.status, task.completed_at) == (CANCELLED, at(3))
    assert (events[-1].event, events[-1].reason) == (EventKind.CANCELLED, "cancel grace expired")
    assert isinstance(refused(task, Finish(1, COMPLETED)), StaleAttempt)  # the cancelled attempt's late write


@pytest.mark.parametrize("task", [fresh(), running(), finished(COMPLETED), finished(CANCELLED)])
def test_expire_cancel_without_a_pending_request_changes_nothing(task: Task) -> None:
    after, event = apply(task, ExpireCancel(), at(9))
    assert event is None
    assert after == task


# --- Retry -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [FAILED, CANCELLED])
def test_retry_grants_extra_attempts_and_clears_the_outcome(status: TaskStatus) -> None:
    task, _ = run(fresh(max_attempts=1), Start(1), Finish(1, status, error_message="boom"))
    task, event = apply(task, Retry(extra_attempts=3), at(7))
    assert (task.status, task.attempts, task.max_attempts) == (PENDING, 1, 4)
    assert (task.completed_at, task.error_message, task.result, task.progress) == (None, None, None, None)
    assert event is not None
    assert (event.event, event.status) == (EventKind.RETRYING, PENDING)
    task, _ = apply(task, Start(2), at(8))
    assert (task.status, task.attempts) == (RUNNING, 2)


@pytest.mark.parametrize("task", [fresh(), running(), finished(COMPLETED)])
def test_retry_of_a_task_that_is_not_failed_or_cancelled_is_refused(task: Task) -> None:
    refused(task, Retry(extra_attempts=1))


# --- TaskUpdate: PUT /api/tasks/{id} ---------------------------------------------------------------


def test_patch_pending_to_running_sets_started_at() -> None:
    task, event = apply(fresh(), TaskUpdate(status=RUNNING), at(1))
    assert (task.status, task.started_at, task.attempts) == (RUNNING, at(1), 1)
    assert event is not None
    assert event.event is EventKind.STARTED


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_patch_pending_to_terminal_sets_completed_and_started_at(status: TaskStatus) -> None:
    task, event = apply(fresh(), TaskUpdate(status=status, result={"ok": True}), at(2))
    assert (task.status, task.completed_at, task.started_at) == (status, at(2), at(2))
    assert event is not None
    assert (event.event, event.status) == (FINISHED_EVENT[status], status)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_patch_running_to_terminal_keeps_started_at(status: TaskStatus) -> None:
    task, event = apply(running(), TaskUpdate(status=status, error_message="why"), at(4))
    assert (task.status, task.completed_at, task.started_at) == (status, at(4), at(1))
    assert event is not None
    assert event.status is status


def test_patch_completed_with_result_and_progress_is_one_event() -> None:
    progress = Progress(current=10, total=10)
    task, event = apply(running(), TaskUpdate(status=COMPLETED, result=[1], progress=progress), at(3))
    assert (task.status, task.result, task.progress) == (COMPLETED, [1], progress)
    assert event is not None
    assert (event.event, event.result, event.progress, event.seq) == (EventKind.COMPLETED, [1], progress, 3)


@pytest.mark.parametrize("status", [FAILED, CANCELLED])
def test_patch_back_to_pending_is_a_retry(status: TaskStatus) -> None:
    retry = PatchRetry(TaskUpdate(status=PENDING, priority=5), extra_attempts=2)
    task, event = apply(finished(status), retry, at(5))
    assert (task.status, task.priority, task.max_attempts, task.completed_at) == (PENDING, 5, 3, None)
    assert event is not None
    assert (event.event, event.status, event.priority) == (EventKind.RETRYING, PENDING, 5)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (RUNNING, PENDING),
        (COMPLETED, PENDING),
        (COMPLETED, RUNNING),
        (COMPLETED, FAILED),
        (COMPLETED, COMPLETED),
        (FAILED, RUNNING),
        (FAILED, COMPLETED),
        (CANCELLED, RUNNING),
        (CANCELLED, FAILED),
    ],
)
def test_patch_illegal_moves_conflict(start: TaskStatus, target: TaskStatus) -> None:
    task = running() if start is RUNNING else finished(start)
    refused(task, TaskUpdate(status=target))


@pytest.mark.parametrize(
    "patch",
    [
        TaskUpdate(progress=Progress(current=1)),  # progress only while running
        TaskUpdate(status=PENDING, progress=None),  # a retry does not also set the outcome
    ],
)
def test_patch_progress_on_a_pending_or_retried_task_conflicts(patch: TaskUpdate) -> None:
    refused(fresh() if patch.status is UNSET else finished(FAILED), patch)


@pytest.mark.parametrize(
    "patch", [TaskUpdate(result=1), TaskUpdate(error_message="x"), TaskUpdate(progress=Progress(current=1))]
)
def test_patch_outcome_of_a_finished_task_conflicts(patch: TaskUpdate) -> None:
    refused(finished(COMPLETED), patch)


def test_patch_priority_and_metadata_is_an_update_event() -> None:
    task, event = apply(fresh(), TaskUpdate(priority=3, metadata={"k": "v"}), at(1))
    assert (task.priority, task.metadata, task.status, task.seq) == (3, {"k": "v"}, PENDING, 2)
    assert event is not None
    assert (event.event, event.priority, event.metadata) == (EventKind.UPDATED, 3, {"k": "v"})


def test_patch_that_changes_nothing_emits_nothing() -> None:
    task = fresh()
    after, event = apply(task, TaskUpdate(priority=task.priority, metadata=task.metadata), at(1))
    assert event is None
    assert after == task


@pytest.mark.parametrize("status", list(TaskStatus))
def test_patch_to_the_same_status_conflicts(status: TaskStatus) -> None:
    """Not a move (CONTRACT §2: anything else is 409): two workers cannot both claim a task."""
    task = {PENDING: fresh(), RUNNING: running()}.get(status) or finished(status)
    refused(task, TaskUpdate(status=status))


def test_patch_progress_while_running_is_a_progress_event() -> None:
    task, event = apply(running(), TaskUpdate(progress=Progress(current=2, total=8)), at(2))
    assert task.progress is not None
    assert task.progress.percent == 25.0
    assert event is not None
    assert event.event is EventKind.PROGRESS


# --- Delete -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "reported"),
    [
        (fresh(), CANCELLED),
        (running(), CANCELLED),
        (finished(COMPLETED), COMPLETED),
        (finished(FAILED), FAILED),
    ],
)
def test_delete_reports_cancelled_for_an_active_task(task: Task, reported: TaskStatus) -> None:
    after, event = apply(task, Delete(), at(9))
    assert event is not None
    assert (event.event, event.status, event.seq, after.seq) == (
        EventKind.DELETED,
        reported,
        task.seq + 1,
        task.seq + 1,
    )


# --- Progress ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "total", "percent"),
    [
        (0, 10, 0.0),
        (3, 4, 75.0),
        (1, 3, 33.33),
        (2, 3, 66.67),
        (5, 5, 100.0),
        (0.5, 2.0, 25.0),
        (7, None, None),
    ],
)
def test_progress_percent_is_derived_from_current_and_total(
    current: float, total: float | None, percent: float | None
) -> None:
    assert Progress(current=current, total=total).percent == percent
    decoded = msgspec.json.decode(encode({"current": current, "total": total, "percent": 1}), type=Progress)
    assert decoded.percent == percent


def test_progress_current_above_total_is_rejected() -> None:
    with pytest.raises(ValueError, match="exceed"):
        Progress(current=11, total=10)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"current": 11, "total": 10}, Progress)


@pytest.mark.parametrize(
    "raw", [{"current": -1}, {"current": 1, "total": 0}, {"current": 1, "extra": 2}, {"current": "1"}]
)
def test_progress_out_of_shape_is_rejected(raw: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(raw, Progress)


# --- properties over random sequences of changes ----------------------------------------------

terminal = st.sampled_from(sorted(TERMINAL))


def changes_for(task: Task, *, deletes: bool = True) -> st.SearchStrategy[Change]:
    """Any change, with attempt numbers around the task's current one (so many are stale)."""
    attempt = st.sampled_from(
        [task.attempts, task.attempts, task.attempts, task.attempts - 1, task.attempts + 1]
    )
    common = [
        st.builds(
            Start,
            st.sampled_from([task.attempts + 1, task.attempts + 1, task.attempts, task.attempts + 2]),
            worker=st.sampled_from([None, "w1", "w2"]),
        ),
        st.builds(ReportProgress, attempt, progresses),
        st.builds(Finish, attempt, terminal, result=values, error_message=st.one_of(st.none(), texts)),
        st.builds(
            Requeue,
            attempt,
            reason=st.just("error"),
            error_message=st.one_of(st.none(), texts),
            refund=st.booleans(),
        ),
        st.just(RequestCancel()),
        st.just(ExpireCancel()),
        st.builds(Retry, st.integers(1, 3)),
        st.builds(WorkerLost, st.sampled_from(["w1", "w2"])),
        patches(),
        patches(),
        st.builds(PatchRetry, patches(), st.integers(1, 3)),
    ]
    if not deletes:
        return st.one_of(*common)
    return st.one_of(*common, *common, st.just(Delete()))  # Delete ends a sequence: keep it rare


def expected_outcome(task: Task, change: Change) -> str:
    """'event', 'none' or 'refused': what applying `change` to `task` must do."""
    match change:
        case Start():
            return "event" if task.status is PENDING and change.attempt == task.attempts + 1 else "refused"
        case ReportProgress() | Finish() | Requeue():
            return "refused" if is_stale(task, change) else "event"
        case WorkerLost():
            return "event" if task.status is RUNNING and task.worker == change.worker else "none"
        case RequestCancel():
            if task.status in TERMINAL:
                return "refused"
            return "none" if task.status is RUNNING and task.cancel_requested else "event"
        case ExpireCancel():
            return "event" if task.status is RUNNING and task.cancel_requested else "none"
        case Retry():
            return "event" if task.status in RETRYABLE else "refused"
        case TaskUpdate():
            return update_outcome(task, change)
        case PatchRetry():
            return update_outcome(task, change.patch)
        case Delete():
            return "event"


def update_outcome(task: Task, update: TaskUpdate) -> str:
    """A PUT without `attempt`: a status move (back to pending is a retry) plus field edits."""
    sets_outcome = any(value is not UNSET for value in (update.progress, update.result, update.error_message))
    if update.status is task.status:
        return "refused"
    if update.status is PENDING:
        return "event" if task.status in RETRYABLE and not sets_outcome else "refused"
    if task.status in TERMINAL and sets_outcome:
        return "refused"
    if update.status is not UNSET:
        starts = update.status is RUNNING and task.status is PENDING
        ends = update.status in TERMINAL and task.status in ACTIVE
        return "event" if starts or ends else "refused"
    edited = {
        name
        for name in ("progress", "result", "error_message", "priority", "metadata")
        if (value := getattr(update, name)) is not UNSET and value != getattr(task, name)
    }
    if not edited:
        return "none"
    return "refused" if "progress" in edited and task.status is not RUNNING else "event"


def check_state(task: Task) -> None:
    assert (task.completed_at is not None) == (task.status in TERMINAL), task
    if task.status is RUNNING or task.status in TERMINAL:
        assert task.started_at is not None, task
    if task.status is PENDING:
        assert task.progress is None, task
    assert task.attempts >= 0


def check_applied(before: Task, change: Change, when: datetime, after: Task, event: Event) -> None:
    assert after.seq == before.seq + 1 == event.seq
    assert (event.task_id, event.at, after.updated_at, event.attempt) == (
        before.id,
        when,
        when,
        after.attempts,
    )
    for name in FIXED_FIELDS:
        assert getattr(after, name) == getattr(before, name), name
    if event.event is EventKind.DELETED:
        assert after.status is before.status
        assert event.status is (CANCELLED if before.status in ACTIVE else before.status)
        return
    assert event.status is after.status
    moved = (before.status, after.status)
    if after.status is not before.status:
        assert moved in LEGAL_MOVES, (moved, change)
        if moved == (RUNNING, PENDING):
            assert isinstance(change, Requeue | WorkerLost), change  # a lost worker's attempt is over too
        expected_kind = (
            EventKind.STARTED
            if after.status is RUNNING
            else EventKind.RETRYING
            if after.status is PENDING
            else FINISHED_EVENT[after.status]
        )
        assert event.event is expected_kind
        if after.status in TERMINAL:
            assert after.completed_at == when
    else:
        assert event.event in {EventKind.PROGRESS, EventKind.UPDATED}, (event, change)
    if after.attempts != before.attempts:
        assert after.attempts == before.attempts + 1
        assert moved == (PENDING, RUNNING)
        assert event.event is EventKind.STARTED
        assert after.started_at == when
    if after.max_attempts != before.max_attempts:
        refunded = isinstance(change, Requeue) and change.refund and moved == (RUNNING, PENDING)
        assert refunded or moved in {(FAILED, PENDING), (CANCELLED, PENDING)}
        assert (
            after.max_attempts == before.max_attempts + 1 if refunded else after.max_attempts > after.attempts
        )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), max_attempts=st.integers(1, 3))
def test_random_sequences_keep_every_invariant(data: st.DataObject, max_attempts: int) -> None:
    task = fresh(max_attempts)
    history = [1]
    for step in range(1, data.draw(st.integers(1, 40), label="steps") + 1):
        change = data.draw(changes_for(task), label=f"change {step}")
        when = at(step)
        snapshot = encode(task)
        expected = expected_outcome(task, change)
        outcome = try_apply(task, change, when)
        if isinstance(outcome, InvalidTransition):
            assert encode(task) == snapshot  # pure: nothing changed
            assert expected == "refused", (change, task)
            if is_stale(task, change):
                assert isinstance(outcome, StaleAttempt), (change, task)
            continue
        after, event = outcome
        assert encode(task) == snapshot  # the input is never mutated
        assert not is_stale(task, change), (change, task)
        if event is None:
            assert expected == "none", (change, task)
            assert encode(after) == snapshot
            continue
        assert expected == "event", (change, task)
        check_applied(task, change, when, after, event)
        check_state(after)
        history.append(event.seq)
        if event.event is EventKind.DELETED:
            break
        task = after
    assert history == list(range(1, len(history) + 1))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_cancel_request_is_never_lost(data: st.DataObject) -> None:
    """Once cancel_requested is set, the task does not go back to the queue without a retry:
    it stays running until it ends (CONTRACT §2: it reaches cancelled within the grace)."""
    task = fresh()
    for step in range(1, data.draw(st.integers(1, 30), label="steps") + 1):
        change = data.draw(changes_for(task, deletes=False), label=f"c{step}")
        try:
            after, _ = apply(task, change, at(step))
        except InvalidTransition:
            continue
        if task.cancel_requested and task.status is RUNNING:
            assert after.status is not PENDING, (change, task)
        task = after


# --- properties of worker ids, fencing and backoff --------------------------------------------

WORKER_IDS = ("host-a:11:x", "host-b:22:y")
delays = st.sampled_from([0.0, 0.0, 0.25, 1.5, 60.0])


class Draft(msgspec.Struct, frozen=True):
    """A change whose attempt number, when `offset` is set, is the task's current one plus `offset`."""

    change: Change
    offset: int | None = None

    def for_task(self, task: Task) -> Change:
        if self.offset is None:
            return self.change
        return msgspec.structs.replace(self.change, attempt=task.attempts + self.offset)


around = st.sampled_from([0, 0, 0, -1, 1])  # relative attempt numbers: many writes are stale
placeholder = st.just(0)  # an attempt number that `Draft.for_task` replaces
# Any change but Delete, including the ones only workers and the reconciler make: starts on a named
# worker, backoffs, lost workers and patches naming their attempt. Built once: drawing is the hot path.
drafts = st.one_of(
    st.builds(
        Draft,
        st.builds(Start, placeholder, worker=st.sampled_from([*WORKER_IDS, None])),
        offset=st.sampled_from([1, 1, 0, 2]),
    ),
    st.builds(Draft, st.builds(ReportProgress, placeholder, progresses), offset=around),
    st.builds(
        Draft,
        st.builds(Finish, placeholder, terminal, result=values, error_message=st.one_of(st.none(), texts)),
        offset=around,
    ),
    st.builds(
        Draft,
        st.builds(Requeue, placeholder, reason=st.just("error"), refund=st.booleans(), delay_s=delays),
        offset=around,
    ),
    st.builds(Draft, st.builds(WorkerLost, st.sampled_from(WORKER_IDS))),
    st.builds(Draft, st.builds(WorkerLost, st.sampled_from(WORKER_IDS))),
    st.builds(Draft, st.sampled_from([RequestCancel(), ExpireCancel()])),
    st.builds(Draft, st.builds(Retry, st.integers(1, 3))),
    st.builds(Draft, patches()),
    st.builds(Draft, patches(), offset=st.sampled_from([0, 0, 1, -1])),
)


def reached(data: st.DataObject, max_steps: int = 15) -> Task:
    """A task in a state some random sequence of accepted changes leads to."""
    task = fresh(data.draw(st.integers(1, 3), label="max_attempts"))
    for step in range(1, data.draw(st.integers(0, max_steps), label="steps") + 1):
        change = data.draw(drafts, label=f"change {step}").for_task(task)
        outcome = try_apply(task, change, at(step))
        if not isinstance(outcome, InvalidTransition):
            task = outcome[0]
    return task


def check_worker_lost(before: Task, change: WorkerLost, after: Task, event: Event | None) -> None:
    if before.status is not RUNNING or before.worker != change.worker:
        assert event is None, (before, change)
        assert after == before
        return
    assert event is not None
    assert (after.worker, after.attempts, after.max_attempts) == (None, before.attempts, before.max_attempts)
    if before.cancel_requested:
        assert (after.status, event.event) == (CANCELLED, EventKind.CANCELLED)
    elif before.attempts < before.max_attempts:
        assert (after.status, event.event, event.reason) == (PENDING, EventKind.RETRYING, "worker lost")
        assert event.run_after is UNSET
    else:
        assert (after.status, event.event, event.reason) == (FAILED, EventKind.FAILED, "worker lost")
    assert after.error_message is not None
    assert change.worker in after.error_message


def check_worker_field(before: Task, change: Change, after: Task, event: Event) -> None:
    """Start names the worker; every move out of running forgets it; nothing else touches it."""
    if event.event is EventKind.STARTED:
        claimed_by = change.worker if isinstance(change, Start) else None
        assert after.worker == claimed_by, (change, after)
        assert event.worker == (UNSET if claimed_by is None else claimed_by)
    elif after.status is RUNNING:
        assert after.worker == before.worker
    else:
        assert after.worker is None, (change, after)


def check_requeue_delay(before: Task, change: Requeue, when: datetime, after: Task, event: Event) -> None:
    if before.cancel_requested:
        assert (after.status, event.run_after) == (CANCELLED, UNSET)
        return
    assert after.status is PENDING
    due = when + timedelta(seconds=change.delay_s) if change.delay_s > 0 else UNSET
    assert event.run_after == due


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_sequences_with_workers_keep_seq_and_worker_invariants(data: st.DataObject) -> None:
    task = fresh(data.draw(st.integers(1, 3), label="max_attempts"))
    seqs = [task.seq]
    for step in range(1, data.draw(st.integers(1, 40), label="steps") + 1):
        change = data.draw(drafts, label=f"change {step}").for_task(task)
        when = at(step)
        outcome = try_apply(task, change, when)
        assert isinstance(outcome, StaleAttempt) == fencing_refuses(task, change), (change, task)
        if isinstance(outcome, InvalidTransition):
            continue
        after, event = outcome
        if isinstance(change, WorkerLost):
            check_worker_lost(task, change, after, event)
        if event is None:
            assert after == task
            continue
        assert after.seq == task.seq + 1 == event.seq
        if not isinstance(change, WorkerLost):
            check_applied(task, change, when, after, event)
        check_state(after)
        check_worker_field(task, change, after, event)
        if isinstance(change, Requeue):
            check_requeue_delay(task, change, when, after, event)
        seqs.append(event.seq)
        task = after
    assert seqs == list(range(1, len(seqs) + 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), worker=st.sampled_from(WORKER_IDS))
def test_worker_lost_ends_only_the_attempt_running_on_that_worker(data: st.DataObject, worker: str) -> None:
    task = reached(data)
    if data.draw(st.booleans(), label="on this worker") and task.status is PENDING:
        task, _ = apply(task, Start(task.attempts + 1, worker=worker), at(90))
    after, event = apply(task, WorkerLost(worker), at(99))
    check_worker_lost(task, WorkerLost(worker), after, event)
    if event is not None:
        assert after.seq == event.seq == task.seq + 1
        if after.status is PENDING:  # the lost attempt is spent: the next claim is a new attempt
            assert isinstance(refused(after, Start(task.attempts, worker=worker)), StaleAttempt)
            assert isinstance(refused(after, Finish(task.attempts, COMPLETED)), StaleAttempt)
            assert apply(after, Start(task.attempts + 1), at(100))[0].attempts == task.attempts + 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), patch=patches(), offset=st.sampled_from([0, 0, 1, 1, -1, 2]), start=st.booleans())
def test_a_patch_naming_its_attempt_is_refused_unless_that_attempt_is_current(
    data: st.DataObject, patch: TaskUpdate, offset: int, start: bool
) -> None:
    task = reached(data)
    if start and task.status is PENDING:
        task, _ = apply(task, Start(task.attempts + 1), at(40))
    named = msgspec.structs.replace(patch, attempt=task.attempts + offset)
    if not is_current(task, named):
        assert isinstance(refused(task, named), StaleAttempt)
        return
    fenced_outcome, plain_outcome = try_apply(task, named, at(50)), try_apply(task, patch, at(50))
    if isinstance(plain_outcome, InvalidTransition):  # the attempt is right, the move is not legal
        assert type(fenced_outcome) is type(plain_outcome)
        return
    assert fenced_outcome == plain_outcome  # a current attempt changes nothing about the patch


@settings(max_examples=200, deadline=None)
@given(
    max_attempts=st.integers(1, 3),
    refunded=st.integers(0, 2),
    cancel=st.booleans(),
    delay_s=st.one_of(st.just(0.0), st.floats(0.001, 3600, allow_nan=False)),
)
def test_a_requeue_with_a_delay_runs_after_it(
    max_attempts: int, refunded: int, cancel: bool, delay_s: float
) -> None:
    task, _ = run(fresh(max_attempts), Start(1, WORKER_IDS[0]))
    for attempt in range(1, refunded + 1):
        task, _ = run(task, Requeue(attempt, reason="worker stopped", refund=True), Start(attempt + 1))
    if cancel:
        task, _ = run(task, RequestCancel())
    change = Requeue(task.attempts, reason="error", delay_s=delay_s)
    after, event = apply(task, change, at(60))
    assert event is not None
    check_requeue_delay(task, change, at(60), after, event)
    assert (after.worker, after.attempts, after.seq) == (None, task.attempts, task.seq + 1)
