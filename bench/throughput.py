"""Throughput: no-op tasks submitted → completed per second with one worker process, beside raw
arq no-op jobs on the same Redis (its defaults; max_jobs 100; max_jobs 100 with a 0.05 s poll).

Each side's queue is filled first, then one worker starts; the rate is the count over the time
from the first start to the last finish, as the stored records say (task `started_at` and
`completed_at`; arq's result `start_time` and `finish_time`). The API is stopped while the
jobcast worker drains, as no API runs beside arq's worker.
"""

import time
from typing import Any

from bench import arq_side
from bench.harness import Stack, arguments, emit
from bench.jobcast_side import (
    completed_count,
    declare_types,
    process_cpu_s,
    seconds,
    submit,
    tasks,
    timeline,
    wait_for,
)

ARQ_CONFIGS = {  # name: (max_jobs, poll_delay_s); None keeps arq's default (10 jobs, 0.5 s)
    "arq_defaults": (None, None),
    "arq_max_jobs_100": (100, None),
    "arq_max_jobs_100_poll_50ms": (100, 0.05),
}
CONCURRENCY = 100
POLL_S = "0.05"
DRAIN_TIMEOUT_S = 120.0


def jobcast(count: int) -> dict[str, Any]:
    with Stack(JOBCAST_POLL_S=POLL_S) as stack:
        api, port = stack.api()
        declare_types(stack)
        submitted = submit(port, count, connections=16)
        assert submitted["statuses"] == {"202": count}, submitted
        stack.stop(api)
        client = stack.redis()
        redis_cpu = process_cpu_s(stack.redis_server.process.pid)  # type: ignore[union-attr]
        worker = stack.worker("bench.tasks", concurrency=CONCURRENCY)
        cpu_before = worker.cpu_s()
        if not wait_for(lambda: completed_count(client) >= count, DRAIN_TIMEOUT_S):
            raise RuntimeError(f"only {completed_count(client)} of {count} tasks completed")
        worker_cpu = worker.cpu_s() - cpu_before
        redis_cpu = process_cpu_s(stack.redis_server.process.pid) - redis_cpu  # type: ignore[union-attr]
        records = tasks(client, "completed")
        client.close()
    starts = [seconds(task.started_at) for task in records]
    ends = [seconds(task.completed_at) for task in records]
    return {**_rate(starts, ends), "worker_cpu_s": round(worker_cpu, 2), "redis_cpu_s": round(redis_cpu, 2)}


def arq(count: int, max_jobs: int | None, poll_delay_s: float | None) -> dict[str, Any]:
    with Stack() as stack:
        arq_side.enqueue(stack.redis_url, count)
        client = stack.redis()
        redis_cpu = process_cpu_s(stack.redis_server.process.pid)  # type: ignore[union-attr]
        worker = arq_side.start_worker(stack, max_jobs, poll_delay_s)
        if not arq_side.wait_drained(client, count, DRAIN_TIMEOUT_S):
            raise RuntimeError("arq did not run every job")
        time.sleep(0.1)
        worker_cpu = worker.cpu_s()
        redis_cpu = process_cpu_s(stack.redis_server.process.pid) - redis_cpu  # type: ignore[union-attr]
        found = arq_side.results(client)
        client.close()
    starts = [result.start_time.timestamp() for result in found]
    ends = [result.finish_time.timestamp() for result in found]
    cpu = {"worker_cpu_s_with_start": round(worker_cpu, 2), "redis_cpu_s": round(redis_cpu, 2)}
    return {**_rate(starts, ends), **cpu}


def _rate(starts: list[float], ends: list[float]) -> dict[str, Any]:
    """Completions per second from the first start to the last end, and how they spread."""
    span_s = max(ends) - min(starts)
    return {
        "per_s": round(len(ends) / span_s, 1),
        "span_s": round(span_s, 3),
        "timeline_100ms": timeline(ends),
    }


def main() -> None:
    args = arguments(__doc__ or "", count=6000)
    count = 30 if args.quick else args.count
    figures: dict[str, Any] = {"count": count, "jobcast": jobcast(count)}
    for name, (max_jobs, poll_delay_s) in ARQ_CONFIGS.items():
        # arq's defaults run ~200 jobs a second: a fifth of the count keeps the run short.
        arq_count = count // 5 if max_jobs is None and not args.quick else count
        figures[name] = arq(arq_count, max_jobs, poll_delay_s)
    emit(figures)


if __name__ == "__main__":
    main()
