"""Pickup latency: submit → `task.started` at a light load (100 tasks a second), p50 and p99,
with jobcast's default settings; beside raw arq's enqueue → start at the same rate (its defaults,
and a 0.05 s poll).

jobcast's figure is the task's `started_at` (stamped by the worker as it claims the attempt)
minus its `created_at` (stamped by the API as it stores the submission); arq's is its result's
`start_time` minus `enqueue_time`. Both are stamped on one machine, by one clock.
"""

from typing import Any

from bench import arq_side
from bench.harness import Stack, arguments, emit, ms, percentile
from bench.jobcast_side import completed_count, declare_types, seconds, submit, tasks, wait_for

RATE = 100.0
TIMEOUT_S = 60.0


def summary(delays_s: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": ms(percentile(delays_s, 0.5)),
        "p99_ms": ms(percentile(delays_s, 0.99)),
        "max_ms": ms(max(delays_s, default=None)),
        "samples": len(delays_s),
    }


def jobcast(count: int) -> dict[str, Any]:
    with Stack() as stack:
        _, port = stack.api()
        declare_types(stack)
        stack.worker("bench.tasks")
        submitted = submit(port, count, rate=RATE, connections=4)
        client = stack.redis()
        wait_for(lambda: completed_count(client) >= count, TIMEOUT_S)
        records = tasks(client)
        client.close()
    delays = [seconds(task.started_at) - seconds(task.created_at) for task in records if task.started_at]
    return {
        **summary(delays),
        "delays_ms": sorted(round(d * 1000, 2) for d in delays),
        "submit_p50_ms": submitted["p50_ms"],
        "submit_p99_ms": submitted["p99_ms"],
        "load_cpu_s": submitted["cpu_s"],
    }


def arq(count: int, poll_delay_s: float | None) -> dict[str, Any]:
    with Stack() as stack:
        arq_side.start_worker(stack, None, poll_delay_s)
        arq_side.enqueue(stack.redis_url, count, rate=RATE)
        client = stack.redis()
        arq_side.wait_drained(client, count, TIMEOUT_S)
        found = arq_side.results(client)
        client.close()
    delays = [(r.start_time - r.enqueue_time).total_seconds() for r in found]
    return {**summary(delays), "delays_ms": sorted(round(d * 1000, 2) for d in delays)}


def main() -> None:
    args = arguments(__doc__ or "", count=1000)
    count = 20 if args.quick else args.count
    emit(
        {
            "rate_per_s": RATE,
            "jobcast": jobcast(count),
            "arq_defaults": arq(count, None),
            "arq_poll_50ms": arq(count, 0.05),
        }
    )


if __name__ == "__main__":
    main()
