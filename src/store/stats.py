"""What the whole system is doing, read from Redis: tasks by status and type now, the counters
every change keeps (counters.py), throughput per minute and the live workers. Every API instance
reads the same answer; /api/stats returns it and /metrics exposes it."""

from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis

from jobcast.model.task_types import TaskType
from jobcast.model.tasks import TaskStatus, utc_now
from jobcast.store import counters, keys
from jobcast.store.counters import DURATION, DURATION_BUCKETS_S, DURATION_MS, EVENTS, INF, SEP, SUBMITTED
from jobcast.store.workers import live_workers

STATUSES = tuple(TaskStatus)
BUCKETS = (*map(counters.bucket_label, DURATION_BUCKETS_S), INF)


class TypeStats(msgspec.Struct, kw_only=True):
    """One type's counts in GET /api/stats."""

    tasks: dict[str, int]  # in the store now, by status
    submitted: int = 0  # since the store began, like the three after it
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class Minute(msgspec.Struct, kw_only=True):
    """What happened in one minute, for the dashboard's throughput chart."""

    minute: datetime
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class Durations(msgspec.Struct, kw_only=True):
    """How long the attempts that finished tasks of a type ran, by how the task ended."""

    type: str
    status: str
    count: int
    sum_s: float
    mean_s: float
    buckets: dict[str, int]  # cumulative: attempts that ran at most this many seconds


class Stats(msgspec.Struct, kw_only=True):
    """The figures behind GET /api/stats and /metrics, over the whole system."""

    at: datetime
    tasks: dict[str, int]  # in the store now, by status
    types: dict[str, TypeStats]
    throughput: list[Minute]  # the last 15 minutes, oldest first; the current minute is last
    durations: list[Durations]
    events_published: dict[str, int]  # by event kind, since the store began
    queue_depth: int  # pending tasks: queued, or waiting out a retry's backoff
    workers_online: int


async def read_stats(redis: Redis, task_types: list[TaskType]) -> Stats:
    """One pipelined read of every figure, plus the worker registry."""
    now = utc_now()
    minutes = [counters.minute_of(now) - back for back in reversed(range(counters.THROUGHPUT_MINUTES))]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.TALLIES)
        for status in STATUSES:
            pipe.zcard(keys.task_index(status))
        for task_type in task_types:
            for status in STATUSES:
                pipe.zcard(keys.task_index(status, task_type.id))
        for minute in minutes:
            pipe.hgetall(keys.throughput(minute))
        replies = await pipe.execute()
    counts = _decode_counts(replies[0])
    now_by_status = dict(zip(STATUSES, replies[1 : 1 + len(STATUSES)], strict=True))
    per_type = replies[1 + len(STATUSES) : len(replies) - len(minutes)]
    return Stats(
        at=now,
        tasks={str(status): int(n) for status, n in now_by_status.items()},
        types=_types(counts, task_types, per_type),
        throughput=[
            _minute(m, _decode_counts(raw)) for m, raw in zip(minutes, replies[-len(minutes) :], strict=True)
        ],
        durations=_durations(counts),
        events_published={parts[1]: n for parts, n in _split(counts, EVENTS).items()},
        queue_depth=int(now_by_status[TaskStatus.PENDING]),
        workers_online=len(await live_workers(redis)),
    )


def _decode_counts(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {name.decode(): int(value) for name, value in raw.items()}


def _split(counts: dict[str, int], first: str) -> dict[tuple[str, ...], int]:
    """Counters whose first part is `first`, keyed by all their parts."""
    return {tuple(name.split(SEP)): n for name, n in counts.items() if name.startswith(first + SEP)}


def _types(counts: dict[str, int], task_types: list[TaskType], per_type: list[int]) -> dict[str, TypeStats]:
    """Every known type, and any type the counters name (with no tasks left in the store)."""
    types: dict[str, TypeStats] = {}
    for index, task_type in enumerate(task_types):
        row = per_type[index * len(STATUSES) : (index + 1) * len(STATUSES)]
        types[task_type.name] = TypeStats(tasks={str(s): int(n) for s, n in zip(STATUSES, row, strict=True)})
    for name, n in counts.items():
        kind, _, type_name = name.partition(SEP)
        if kind in (SUBMITTED, *map(str, counters.FINAL_STATUSES)) and SEP not in type_name:
            stats = types.setdefault(type_name, TypeStats(tasks={str(s): 0 for s in STATUSES}))
            setattr(stats, kind, n)
    return dict(sorted(types.items()))


def _minute(minute: int, counts: dict[str, int]) -> Minute:
    at = datetime.fromtimestamp(minute * 60, UTC)
    fields = {name: n for name, n in counts.items() if name in Minute.__struct_fields__}
    return Minute(minute=at, **fields)


def _durations(counts: dict[str, int]) -> list[Durations]:
    sums_ms = {(status, name): n for (_, status, name), n in _split(counts, DURATION_MS).items()}
    per_bucket = {parts[1:]: n for parts, n in _split(counts, DURATION).items()}
    found = []
    for (status, name), sum_ms in sorted(sums_ms.items(), key=lambda item: (item[0][1], item[0][0])):
        cumulative, buckets = 0, {}
        for label in BUCKETS:
            cumulative += per_bucket.get((status, name, label), 0)
            buckets[label] = cumulative
        sum_s = sum_ms / 1000
        mean_s = round(sum_s / cumulative, 3) if cumulative else 0.0
        found.append(
            Durations(type=name, status=status, count=cumulative, sum_s=sum_s, mean_s=mean_s, buckets=buckets)
        )
    return found
