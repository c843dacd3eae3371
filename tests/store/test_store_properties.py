"""The task store under random interleavings (CONTRACT.md §2, §3; STYLE.md rule 4).

Two arq workers, an external worker writing through PUT with its attempt, an admin, a canceller
and the reconciler act on one task, each from its own last read, which may be stale; some steps
run concurrently. After every step Redis must tell one story: a gapless history that `apply`
replays into the record, indexes and claims that follow the status, one live arq job while the
task is pending and none once it has finished, and writes from attempts that are over refused.
"""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import msgspec
import pytest
from arq.constants import retry_key_prefix
from hypothesis import HealthCheck, given, note
from hypothesis import strategies as st
from redis.asyncio import Redis

from jobcast.errors import InvalidTransition, NotFound, StaleAttempt
from jobcast.model.changes import (
    Change,
    Delete,
    ExpireCancel,
    Finish,
    ReportProgress,
    RequestCancel,
    Requeue,
    Retry,
    Start,
    TaskUpdate,
    WorkerLost,
)
from jobcast.model.tasks import TERMINAL, Event, Progress, Task, TaskStatus, new_task, utc_now
from jobcast.settings import Settings
from jobcast.store import keys
from jobcast.store.queue import queue_score
from jobcast.store.stored import Stored, decode_task
from jobcast.store.stores import open_stores
from jobcast.store.tasks import TaskStore, decode_events
from tests.helpers.transitions import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    fencing_refuses,
    patches,
    progresses,
    texts,
    try_apply,
    values,
)

ARQ_WORKERS = ("host-a:101:aaaa", "host-b:202:bbbb")
HTTP_WORKER, ADMIN, CANCELLER, RECONCILER = "http-worker", "admin", "canceller", "reconciler"
ACTORS = (*ARQ_WORKERS, HTTP_WORKER, ADMIN, CANCELLER, RECONCILER)
STEP_TIMEOUT_S = 10.0
SCAN_COUNT = 100_000  # one round trip: the test's Redis holds a few thousand keys at most


# --- what the actors do ------------------------------------------------------------------------


class Advance(msgspec.Struct, frozen=True):
    """An arq worker's next step: pick a job, start the picked one, or report progress."""


class Pick(msgspec.Struct, frozen=True):
    """arq hands this worker the task's queued job (unless another worker holds it)."""


class StartAttempt(msgspec.Struct, frozen=True):
    """The job's function reads the task and, if the job is still its own, claims the next attempt."""


class ReportOwnProgress(msgspec.Struct, frozen=True):
    progress: Progress


class Complete(msgspec.Struct, frozen=True):
    result: Any


class FailAttempt(msgspec.Struct, frozen=True):
    """The handler raised: a retry after `delay_s` while attempts remain, else the task failed."""

    delay_s: float


class StopAttempt(msgspec.Struct, frozen=True):
    """The worker is stopping: the attempt is given back (or, cancel requested, is the cancel)."""


class NoticeCancel(msgspec.Struct, frozen=True):
    """The handler stopped because the task's cancel was requested."""


class Claim(msgspec.Struct, frozen=True):
    """PUT status=running naming the next attempt."""


class PutProgress(msgspec.Struct, frozen=True):
    progress: Progress


class PutOutcome(msgspec.Struct, frozen=True):
    status: TaskStatus
    result: Any
    error_message: str | None


class Edit(msgspec.Struct, frozen=True):
    patch: TaskUpdate


class RetryTask(msgspec.Struct, frozen=True):
    extra_attempts: int


class Remove(msgspec.Struct, frozen=True):
    pass


class Cancel(msgspec.Struct, frozen=True):
    pass


class Lost(msgspec.Struct, frozen=True):
    worker: str


class Expire(msgspec.Struct, frozen=True):
    pass


class Promote(msgspec.Struct, frozen=True):
    pass


class Reread(msgspec.Struct, frozen=True):
    pass


class HandBack(msgspec.Struct, frozen=True):
    """A worker without a handler gives the task a new job instead of starting it."""

    deferred: bool


Action = (
    Advance
    | Pick
    | StartAttempt
    | ReportOwnProgress
    | Complete
    | FailAttempt
    | StopAttempt
    | NoticeCancel
    | Claim
    | PutProgress
    | PutOutcome
    | Edit
    | RetryTask
    | Remove
    | Cancel
    | Lost
    | Expire
    | Promote
    | Reread
    | HandBack
)

attempt_writes = st.one_of(
    st.builds(ReportOwnProgress, progresses),
    st.builds(Complete, values),
    st.builds(FailAttempt, st.sampled_from([0.0, 0.05, 30.0])),
    st.just(StopAttempt()),
    st.just(NoticeCancel()),
)
put_writes = st.one_of(
    st.builds(PutProgress, progresses),
    st.builds(PutOutcome, st.sampled_from(sorted(TERMINAL)), values, st.one_of(st.none(), texts)),
)
ARQ_ACTIONS = st.one_of(
    st.just(Advance()),
    st.just(Advance()),
    st.just(Advance()),
    attempt_writes,
    st.builds(HandBack, st.booleans()),
)
HTTP_ACTIONS = st.one_of(st.sampled_from([Claim(), Reread()]), put_writes, put_writes)
ADMIN_ACTIONS = st.one_of(
    st.builds(Edit, patches()),
    st.builds(
        Edit, st.builds(TaskUpdate, status=st.sampled_from(list(TaskStatus)))
    ),  # a bare move, often legal
    st.builds(RetryTask, st.integers(1, 3)),
    st.sampled_from([Reread(), Reread(), Reread(), Remove()]),  # a delete ends the story: keep it rare
)
CANCELLER_ACTIONS = st.sampled_from([Cancel(), Reread(), Reread()])
RECONCILER_ACTIONS = st.one_of(
    st.builds(Lost, st.sampled_from(ARQ_WORKERS)),
    st.sampled_from([Expire(), Promote(), Reread()]),
)
ACTIONS = {
    **dict.fromkeys(ARQ_WORKERS, ARQ_ACTIONS),
    HTTP_WORKER: HTTP_ACTIONS,
    ADMIN: ADMIN_ACTIONS,
    CANCELLER: CANCELLER_ACTIONS,
    RECONCILER: RECONCILER_ACTIONS,
}
one_step = st.one_of(*(st.tuples(st.just(name), ACTIONS[name]) for name in ACTORS))
# One actor alone, checked against `apply`, or two or three racing.
steps = st.lists(one_step, min_size=1, max_size=3, unique_by=lambda step: step[0])


@dataclass
class Actor:
    """One party acting on the task from its own last read (`known`), which may be stale."""

    name: str
    known: Stored
    job: str | None = None  # an arq worker's job in progress
    started: bool = False  # whether it started an attempt from that job
    attempt: int | None = None  # the last attempt it started or claimed, kept once superseded

    def resolve(self, action: Action) -> Action:
        """What a drawn action means in the actor's state (which draws must not depend on)."""
        if self.name == HTTP_WORKER and self.attempt is None and isinstance(action, PutProgress | PutOutcome):
            return Claim()
        if self.name not in ARQ_WORKERS:
            return action
        if self.job is not None and not self.started:
            return action if isinstance(action, HandBack) else StartAttempt()
        if isinstance(action, Advance) or self.attempt is None:
            return Pick() if self.job is None else ReportOwnProgress(Progress(current=1))
        return action

    def release(self) -> str | None:
        """The job's function returns: arq will finish the job."""
        job, self.job, self.started = self.job, None, False
        return job


@dataclass
class Outcome:
    actor: str
    action: Action
    change: Change | None = None  # the change sent to the store, if any
    result: Stored | InvalidTransition | NotFound | None = None
    finished_job: str | None = None  # the arq job whose function returned with this step

    @property
    def refused(self) -> bool:
        return isinstance(self.result, InvalidTransition | NotFound)


class View(msgspec.Struct, frozen=True):
    """Everything Redis holds about the task, read in one transaction."""

    record: dict[str, str]  # the task's hash: doc, seq, rank, job
    events: list[str]
    indexes: dict[str, float]  # listing indexes holding the task, with its score in each
    claims: frozenset[str]  # workers whose claims set holds the task
    finished: bool
    cancel_deadline: bool
    queued: dict[str, float]  # the task's jobs in arq's queue, with their scores
    deferred: frozenset[str]
    payloads: frozenset[str]  # the task's jobs whose arq payload exists

    @property
    def task(self) -> Task | None:
        return decode_task(self.record["doc"]) if self.record else None

    @property
    def job(self) -> str:
        return self.record.get("job", "")

    def history(self) -> list[Event]:
        return decode_events("[" + ",".join(self.events) + "]")


def explain(task: Task, events: list[Event], changes: list[Change]) -> list[tuple[Task, Change]] | None:
    """Which of `changes`, each applied by `apply` at its event's time, replay `events` exactly."""
    if not events:
        return []
    for i, change in enumerate(changes):
        outcome = try_apply(task, change, events[0].at)
        if isinstance(outcome, InvalidTransition) or outcome[1] != events[0]:
            continue
        rest = explain(outcome[0], events[1:], changes[:i] + changes[i + 1 :])
        if rest is not None:
            return [(outcome[0], change), *rest]
    return None


def is_attempt_write(outcome: Outcome) -> bool:
    return outcome.change is not None and outcome.actor in (*ARQ_WORKERS, HTTP_WORKER)


class Scenario:
    """One task, the actors around it, and what `apply` says the task was after each seq."""

    def __init__(self, tasks: TaskStore, redis: Redis, stored: Stored) -> None:
        self.tasks = tasks
        self.redis = redis
        self.task_id = stored.task.id
        self.rank = stored.rank
        self.actors = {name: Actor(name, stored) for name in ACTORS}
        self.states = {stored.task.seq: stored.task}  # the task after each seq, replayed by `apply`
        self.deleted = False
        created = stored.task
        self.index_keys = [
            keys.task_index(status, type_id, owner)
            for status in (*TaskStatus, keys.ANY)
            for type_id in (created.task_type_id, keys.ANY)
            for owner in (created.owner, keys.ANY)
        ]

    @classmethod
    async def create(cls, tasks: TaskStore, redis: Redis, max_attempts: int) -> "Scenario":
        task, event = new_task(
            task_type="report",
            task_type_id=3,
            parameters={},
            priority=100,
            metadata={},
            owner="alice",
            max_attempts=max_attempts,
            at=utc_now(),
        )
        await tasks.create(task, event, queued=True, idempotency_key=None)
        return cls(tasks, redis, await tasks.read(task.id))

    @property
    def last(self) -> Task:
        return self.states[max(self.states)]

    # --- acting ---------------------------------------------------------------------------------

    async def act(self, actor: Actor, drawn: Action) -> Outcome:
        action = actor.resolve(drawn)
        match action:
            case Pick():
                return await self._pick(actor, action)
            case StartAttempt():
                return await self._start(actor, action)
            case HandBack(deferred=deferred):
                return await self._hand_back(actor, action, deferred)
            case ReportOwnProgress(progress=progress):
                return await self._attempt_write(
                    actor, action, ReportProgress(self._attempt(actor), progress)
                )
            case Complete(result=result):
                return await self._attempt_write(
                    actor, action, Finish(self._attempt(actor), COMPLETED, result)
                )
            case FailAttempt() | StopAttempt() | NoticeCancel():
                return await self._attempt_write(actor, action, self._ending(actor, action))
            case Claim():
                return await self._claim(actor, action)
            case PutProgress(progress=progress):
                return await self._write(
                    actor, action, TaskUpdate(progress=progress, attempt=self._attempt(actor))
                )
            case PutOutcome(status=status, result=result, error_message=error):
                patch = TaskUpdate(
                    status=status, result=result, error_message=error, attempt=self._attempt(actor)
                )
                return await self._write(actor, action, patch)
            case Edit(patch=patch):
                return await self._write(actor, action, patch)
            case RetryTask(extra_attempts=extra):
                return await self._write(actor, action, Retry(extra))
            case Remove():
                return await self._write(actor, action, Delete())
            case Cancel():
                return await self._write(actor, action, RequestCancel())
            case Lost(worker=worker):
                return await self._write(actor, action, WorkerLost(worker))
            case Expire():
                return await self._write(actor, action, ExpireCancel())
            case Promote():  # as a reconciler pass does: read, then promote a deferred job
                with contextlib.suppress(NotFound):
                    actor.known = await self.tasks.read(self.task_id)
                    if await self.redis.zscore(keys.DEFERRED, actor.known.job) is not None:
                        await self.tasks.promote(actor.known)
                return Outcome(actor.name, action)
            case Reread():
                with contextlib.suppress(NotFound):
                    actor.known = await self.tasks.read(self.task_id)
                return Outcome(actor.name, action)
            case Advance():
                raise AssertionError("an actor resolves Advance into what it does next")

    @staticmethod
    def _attempt(actor: Actor) -> int:
        assert actor.attempt is not None
        return actor.attempt

    def _ending(self, actor: Actor, action: Action) -> Change:
        """How an arq worker's attempt ends, decided from its own (possibly stale) read."""
        attempt, task = self._attempt(actor), actor.known.task
        if isinstance(action, NoticeCancel) or (isinstance(action, StopAttempt) and task.cancel_requested):
            return Finish(attempt, CANCELLED, reason="cancel requested")
        if isinstance(action, StopAttempt):
            return Requeue(attempt, reason="worker stopped", refund=True)
        assert isinstance(action, FailAttempt)
        if attempt >= task.max_attempts:
            return Finish(attempt, FAILED, error_message="boom")
        return Requeue(attempt, reason="error", error_message="boom", delay_s=action.delay_s)

    async def _write(
        self, actor: Actor, action: Action, change: Change, by_attempt: bool = False, job: str | None = None
    ) -> Outcome:
        try:
            stored = await self.tasks.change(
                self.task_id, change, known=actor.known, by_attempt=by_attempt, job=job
            )
        except (InvalidTransition, NotFound) as refusal:
            return Outcome(actor.name, action, change, refusal)
        actor.known = stored
        return Outcome(actor.name, action, change, stored)

    async def _attempt_write(self, actor: Actor, action: Action, change: Change) -> Outcome:
        """A write from the attempt an arq worker started: when it is the attempt's last (or the
        attempt turns out to be over), the job's function returns."""
        outcome = await self._write(actor, action, change, by_attempt=True)
        if actor.started and (outcome.refused or not isinstance(change, ReportProgress)):
            outcome.finished_job = actor.release()
        return outcome

    async def _pick(self, actor: Actor, action: Action) -> Outcome:
        """arq hands out the task's queued job to one worker at a time."""
        job = (await self.redis.hget(keys.task(self.task_id), "job") or b"").decode()
        queued = bool(job) and await self.redis.zscore(keys.ARQ_QUEUE, job) is not None
        if queued and await self.redis.set(keys.arq_in_progress(job), actor.name, nx=True):
            actor.job, actor.started = job, False
        return Outcome(actor.name, action)

    async def _start(self, actor: Actor, action: Action) -> Outcome:
        """What the job's function does first: read the task; run it if the job is still its own."""
        try:
            stored = await self.tasks.read(self.task_id)
        except NotFound:
            return Outcome(actor.name, action, finished_job=actor.release())
        if stored.job != actor.job or stored.task.status is not PENDING:
            return Outcome(actor.name, action, finished_job=actor.release())
        actor.known, task = stored, stored.task
        if task.attempts >= task.max_attempts:
            spent = TaskUpdate(status=FAILED, error_message="no attempts left")
            outcome = await self._write(actor, action, spent, by_attempt=True)
            outcome.finished_job = actor.release()
            return outcome
        start = Start(task.attempts + 1, worker=actor.name)
        outcome = await self._write(actor, action, start, by_attempt=True, job=actor.job)
        if outcome.refused:
            outcome.finished_job = actor.release()
        else:
            actor.started, actor.attempt = True, start.attempt
        return outcome

    async def _hand_back(self, actor: Actor, action: Action, deferred: bool) -> Outcome:
        """As the job's function does for a type it has no handler for."""
        with contextlib.suppress(NotFound):
            stored = await self.tasks.read(self.task_id)
            if stored.job == actor.job and stored.task.status is PENDING:
                due_ms = int(time.time() * 1000) + 60_000 if deferred else None
                await self.tasks.reissue(stored, due_ms)
        return Outcome(actor.name, action, finished_job=actor.release())

    async def _claim(self, actor: Actor, action: Action) -> Outcome:
        attempt = actor.known.task.attempts + 1
        outcome = await self._write(actor, action, TaskUpdate(status=RUNNING, attempt=attempt))
        if not outcome.refused:
            actor.attempt = attempt
        return outcome

    async def finish_job(self, job_id: str) -> None:
        """What arq does once a job's function returned: the job leaves its queue and its keys go."""
        async with self.redis.pipeline(transaction=True) as tr:
            tr.zrem(keys.ARQ_ABORTS, job_id)
            tr.zrem(keys.ARQ_QUEUE, job_id)
            tr.delete(retry_key_prefix + job_id, keys.arq_job(job_id), keys.arq_in_progress(job_id))
            await tr.execute()

    # --- running steps ----------------------------------------------------------------------------

    async def run(self, steps: list[tuple[str, Action]]) -> list[Outcome]:
        """One step alone, checked against `apply` on a fresh read; several at once, racing."""
        completed_before = self.last.status is COMPLETED
        if len(steps) == 1:
            outcomes = [await self._alone(*steps[0])]
        else:
            outcomes = list(await asyncio.gather(*(self._racing(name, action) for name, action in steps)))
        if completed_before:  # a completion is final: every later attempt write is refused
            assert all(o.refused for o in outcomes if is_attempt_write(o)), outcomes
        await self.check(outcomes)
        return outcomes

    async def _alone(self, name: str, action: Action) -> Outcome:
        before = await self.view()
        outcome = await self.act(self.actors[name], action)
        if outcome.change is not None:
            await self._check_against_apply(before, outcome)
        if outcome.finished_job:
            await self.finish_job(outcome.finished_job)
        return outcome

    async def _racing(self, name: str, action: Action) -> Outcome:
        outcome = await self.act(self.actors[name], action)
        if outcome.finished_job:
            await self.finish_job(outcome.finished_job)
        return outcome

    async def _check_against_apply(self, before: View, outcome: Outcome) -> None:
        """Alone, the store does what `apply` does to the record it holds, whatever the actor read;
        a change refused (a stale attempt's above all) or changing nothing writes nothing."""
        assert outcome.change is not None
        task = before.task
        if task is None:
            assert isinstance(outcome.result, NotFound), outcome
            return
        if fencing_refuses(task, outcome.change):  # told from the record alone, without `apply`
            assert isinstance(outcome.result, StaleAttempt), outcome
        predicted = try_apply(task, outcome.change, utc_now())
        if isinstance(predicted, InvalidTransition):
            assert type(outcome.result) is type(predicted), (outcome, predicted)
        else:
            assert isinstance(outcome.result, Stored), (outcome, predicted)
            assert outcome.result.task.seq == task.seq + (predicted[1] is not None)
        if isinstance(predicted, InvalidTransition) or predicted[1] is None:
            assert await self.view() == before, outcome
        elif not isinstance(outcome.change, Delete):
            assert isinstance(outcome.result, Stored)
            assert (await self.view()).job == outcome.result.job, outcome

    # --- checking ---------------------------------------------------------------------------------

    async def view(self) -> View:
        task_id = self.task_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.task(task_id))
            pipe.lrange(keys.task_events(task_id), 0, -1)
            for index in self.index_keys:
                pipe.zscore(index, task_id)
            for worker in ARQ_WORKERS:
                pipe.sismember(keys.worker_tasks(worker), task_id)
            pipe.zscore(keys.FINISHED, task_id)
            pipe.zscore(keys.CANCEL_DEADLINES, task_id)
            record, events, *scores = await pipe.execute()
        index_scores, claims, (finished, deadline) = (
            scores[: len(self.index_keys)],
            scores[len(self.index_keys) : -2],
            scores[-2:],
        )
        jobs = f"{task_id}:*"
        return View(
            record={field.decode(): value.decode() for field, value in record.items()},
            events=[event.decode() for event in events],
            indexes={key: score for key, score in zip(self.index_keys, index_scores, strict=True) if score},
            claims=frozenset(w for w, member in zip(ARQ_WORKERS, claims, strict=True) if member),
            finished=finished is not None,
            cancel_deadline=deadline is not None,
            queued={
                m.decode(): s
                async for m, s in self.redis.zscan_iter(keys.ARQ_QUEUE, match=jobs, count=SCAN_COUNT)
            },
            deferred=frozenset(
                [
                    m.decode()
                    async for m, _ in self.redis.zscan_iter(keys.DEFERRED, match=jobs, count=SCAN_COUNT)
                ]
            ),
            payloads=frozenset(
                [
                    k.decode()[len(keys.arq_job("")) :]
                    async for k in self.redis.scan_iter(keys.arq_job(jobs), count=SCAN_COUNT)
                ]
            ),
        )

    async def check(self, outcomes: list[Outcome]) -> None:
        view = await self.view()
        task = view.task
        if task is None:
            self._check_deleted(view, outcomes)
            return
        assert not any(isinstance(o.result, NotFound) for o in outcomes), outcomes
        history = view.history()
        assert [event.seq for event in history] == list(range(1, len(history) + 1))
        assert task.seq == int(view.record["seq"]) == history[-1].seq
        self._replay(history, outcomes)
        assert task == self.states[task.seq]
        for outcome in outcomes:  # what the store answered is what it held at that seq
            if isinstance(outcome.result, Stored):
                assert outcome.result.task == self.states[outcome.result.task.seq], outcome
        check_listing(view, task, self.rank)
        check_job(view, task, self.rank)

    def _replay(self, history: list[Event], outcomes: list[Outcome]) -> None:
        """The new events are exactly some of this step's accepted changes, in some order."""
        new = [event for event in history if event.seq not in self.states]
        accepted = [o.change for o in outcomes if o.change is not None and isinstance(o.result, Stored)]
        replayed = explain(self.last, new, accepted)
        assert replayed is not None, (self.last, new, outcomes)
        for event, (task, change) in zip(new, replayed, strict=True):
            before = self.states[event.seq - 1]
            assert not fencing_refuses(before, change), (before, change)
            if before.status is COMPLETED:
                check_completion_kept(before, change, task)
            self.states[event.seq] = task

    def _check_deleted(self, view: View, outcomes: list[Outcome]) -> None:
        deletes = [o for o in outcomes if isinstance(o.change, Delete) and isinstance(o.result, Stored)]
        assert len(deletes) == 1, outcomes
        empty = View({}, [], {}, frozenset(), False, False, {}, frozenset(), frozenset())
        assert view == empty
        self.deleted = True


def check_completion_kept(completed: Task, change: Change, after: Task) -> None:
    """Once completed, a task changes only by an edit of its priority or metadata."""
    outcome = ("status", "result", "completed_at", "attempts", "progress", "error_message", "worker")
    assert [getattr(after, name) for name in outcome] == [getattr(completed, name) for name in outcome], (
        change
    )
    assert isinstance(change, TaskUpdate), change
    assert change.attempt is msgspec.UNSET, change


def check_listing(view: View, task: Task, rank: int) -> None:
    """Indexes, claims, the finished set and cancel deadlines follow the status."""
    assert view.indexes == dict.fromkeys(keys.task_indexes(task.status, task.task_type_id, task.owner), rank)
    running = task.status is RUNNING
    assert task.worker is None or (running and task.worker in ARQ_WORKERS), task
    assert view.claims == ({task.worker} if running and task.worker else set())
    assert view.finished == (task.status in TERMINAL)
    assert view.cancel_deadline == (running and task.cancel_requested)


def check_job(view: View, task: Task, rank: int) -> None:
    """A pending task has one job, queued (in priority order) or waiting out a backoff; a finished
    one has none; no job of the task but its current one is anywhere."""
    job = view.job
    assert not view.queued.keys() & view.deferred
    waiting = view.queued.keys() | view.deferred
    if task.status is PENDING:
        assert job
        assert (waiting, set(view.payloads)) == ({job}, {job}), (task.status, job, view)
        if job in view.queued:
            assert view.queued[job] == queue_score(task.priority, rank)
    elif task.status is RUNNING:
        assert waiting <= {job}
        assert view.payloads <= {job}
    else:
        assert (waiting, set(view.payloads)) == (set(), set()), (task.status, job, view)


@pytest.fixture
def tally() -> Iterator[Counter[str]]:
    """Counts what the examples did, printed once at the end."""
    counts: Counter[str] = Counter()
    yield counts
    print("\n" + ", ".join(f"{name}: {count}" for name, count in sorted(counts.items())))


def count(tally: Counter[str], outcomes: list[Outcome]) -> None:
    tally["steps"] += 1
    tally["racing steps"] += len(outcomes) > 1
    for outcome in outcomes:
        if outcome.change is None:
            continue
        if isinstance(outcome.result, StaleAttempt):
            tally["stale writes refused"] += 1
        elif outcome.refused:
            tally["other refusals"] += 1
        else:
            tally["accepted"] += 1


@hypothesis.settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_interleavings_keep_the_record_history_indexes_and_jobs_consistent(
    redis: Redis, settings: Settings, tally: Counter[str], data: st.DataObject
) -> None:
    tasks, _ = open_stores(settings, redis)
    max_attempts = data.draw(st.integers(1, 3), label="max_attempts")
    story = data.draw(st.lists(steps, min_size=10, max_size=35), label="steps")
    scenario = await Scenario.create(tasks, redis, max_attempts)
    for number, step in enumerate(story, start=1):
        outcomes = await asyncio.wait_for(scenario.run(step), STEP_TIMEOUT_S)
        note(f"step {number}: {outcomes}")
        count(tally, outcomes)
        if scenario.deleted:
            break
    tally["examples"] += 1
    tally[f"ended {scenario.last.status if not scenario.deleted else 'deleted'}"] += 1


@hypothesis.settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), result=values, detour=st.booleans())
async def test_a_completion_is_never_overwritten_by_any_attempt(
    redis: Redis, settings: Settings, tally: Counter[str], data: st.DataObject, result: Any, detour: bool
) -> None:
    """Attempt 1 completes the task or, with `detour`, attempt 2 after attempt 1's worker was lost;
    then every actor, the superseded and the completing attempt included, goes on writing."""
    tasks, _ = open_stores(settings, redis)
    scenario = await Scenario.create(tasks, redis, max_attempts=2)
    first, second = ARQ_WORKERS
    prefix: list[tuple[str, Action]] = [(first, Advance()), (first, Advance())]
    if detour:
        prefix += [(RECONCILER, Lost(first)), (second, Advance()), (second, Advance())]
    for alone in [*prefix, (second if detour else first, Complete(result))]:
        await asyncio.wait_for(scenario.run([alone]), STEP_TIMEOUT_S)
    completed = scenario.last
    assert (completed.status, completed.result, completed.attempts) == (COMPLETED, result, 1 + detour)
    tally["examples"] += 1
    for number, step in enumerate(data.draw(st.lists(steps, min_size=5, max_size=25), label="steps"), 1):
        outcomes = await asyncio.wait_for(scenario.run(step), STEP_TIMEOUT_S)
        note(f"step {number}: {outcomes}")
        count(tally, outcomes)
        if scenario.deleted:
            return
    last = scenario.last
    assert (last.status, last.result, last.completed_at) == (COMPLETED, result, completed.completed_at)


# --- a task's arq job under races: one minimal case each ------------------------------------------


async def scenario_of(redis: Redis, settings: Settings) -> Scenario:
    tasks, _ = open_stores(settings, redis)
    return await Scenario.create(tasks, redis, max_attempts=2)


async def test_a_cancel_made_on_a_read_from_before_a_reissue_leaves_no_job_queued(
    redis: Redis, settings: Settings
) -> None:
    """A reissue gives the task a new job without a new seq, so a change made on a read from before
    it passes the seq guard, ends the replaced job and leaves the new one queued."""
    scenario = await scenario_of(redis, settings)
    tasks, task_id = scenario.tasks, scenario.task_id
    read_before = await tasks.read(task_id)  # the API read the task to cancel it...
    assert await tasks.reissue(read_before, None)  # ...while a worker without a handler handed it back
    reissued = await tasks.read(task_id)
    cancelled = await tasks.change(task_id, RequestCancel(), known=read_before)
    assert cancelled.task.status is CANCELLED
    view = await scenario.view()
    assert cancelled.job == view.job == reissued.job
    check_job(view, cancelled.task, scenario.rank)


async def test_a_hand_back_on_a_read_from_before_an_edit_does_not_strand_the_task(
    redis: Redis, settings: Settings
) -> None:
    """A worker without a handler reissues the task it read; when an edit landed in between, the
    reissue is refused, the job's function returns anyway, and arq deletes the task's only job."""
    scenario = await scenario_of(redis, settings)
    tasks, task_id = scenario.tasks, scenario.task_id
    read_by_the_job = await tasks.read(task_id)
    await tasks.change(task_id, TaskUpdate(priority=5))  # an admin's edit meanwhile
    await tasks.reissue(read_by_the_job, None)
    await scenario.finish_job(read_by_the_job.job)
    view = await scenario.view()
    assert view.task is not None
    assert view.task.status is PENDING
    check_job(view, view.task, scenario.rank)


async def test_a_worker_starting_from_a_replaced_job_leaves_no_job_behind(
    redis: Redis, settings: Settings
) -> None:
    """The job's function read its task pending; before its Start landed the task was cancelled and
    retried, with a new job. The Start is re-applied to the retried task, so the attempt runs from
    the old job and the new one is still queued once the task has finished."""
    scenario = await scenario_of(redis, settings)
    tasks, task_id = scenario.tasks, scenario.task_id
    read_by_the_job = await tasks.read(task_id)
    await tasks.change(task_id, RequestCancel())
    await tasks.change(task_id, Retry(1))
    start = Start(1, worker=ARQ_WORKERS[0])
    with contextlib.suppress(InvalidTransition):  # refused: a worker starts only from the task's job
        started = await tasks.change(
            task_id, start, known=read_by_the_job, by_attempt=True, job=read_by_the_job.job
        )
        await tasks.change(task_id, Finish(1, COMPLETED, result=1), known=started, by_attempt=True)
    await scenario.finish_job(read_by_the_job.job)
    view = await scenario.view()
    assert view.task is not None
    check_job(view, view.task, scenario.rank)


async def test_a_deferred_job_promoted_on_a_read_from_before_a_priority_change_keeps_the_new_priority(
    redis: Redis, settings: Settings
) -> None:
    """The promote plan guards the job id only, so it queues the job at the priority of its read
    (a priority edit of a deferred task cannot move a job that is not queued yet)."""
    scenario = await scenario_of(redis, settings)
    tasks, task_id = scenario.tasks, scenario.task_id
    started = await tasks.change(task_id, Start(1, worker=ARQ_WORKERS[0]), by_attempt=True)
    await tasks.change(task_id, Requeue(1, reason="error", delay_s=60), known=started, by_attempt=True)
    read_by_the_reconciler = await tasks.read(task_id)
    edited = await tasks.change(task_id, TaskUpdate(priority=1))  # an admin raises its priority meanwhile
    await tasks.promote(read_by_the_reconciler)  # refused or not: either way the queue order holds
    check_job(await scenario.view(), edited.task, scenario.rank)
