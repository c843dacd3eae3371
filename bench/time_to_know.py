"""Time to know: how late a client learns that its task finished, by push (WebSocket) and by
polling its status URL every 2 seconds, and the requests each sends per task.

Tasks report progress 10 times a second for a random 0.5 to 4 s, half of them followed by push
clients, half by pollers, at the same time. Lateness is the moment the client knew minus the
task's stored `completed_at`.
"""

import json
import random
import statistics
from typing import Any

from bench.harness import Generator, Stack, arguments, emit, generators, ms, percentile
from bench.jobcast_side import seconds, tasks


def summary(outcomes: list[dict[str, Any]], finished: dict[str, float]) -> dict[str, Any]:
    late = [o["knew_at"] - finished[o["id"]] for o in outcomes]
    return {
        "mean_late_ms": ms(statistics.fmean(late)),
        "p50_late_ms": ms(percentile(late, 0.5)),
        "max_late_ms": ms(max(late)),
        "requests_per_task": round(statistics.fmean(o["requests"] for o in outcomes), 2),
        "tasks": len(outcomes),
    }


def main() -> None:
    args = arguments(__doc__ or "", tasks=40)
    count = 4 if args.quick else args.tasks
    rng = random.Random(6)
    bodies = [
        {"type": "bench.ticks", "parameters": {"rate_hz": 10, "count": rng.randint(5, 40)}}
        for _ in range(count)
    ]
    with Stack() as stack:
        _, port = stack.api()
        stack.worker("bench.tasks", concurrency=max(10, count))
        half = count // 2
        load = Generator("bench.know_clients", str(port), "--push", str(half), "--poll", str(count - half),
                         "--bodies", json.dumps(bodies))  # fmt: skip
        with generators(load):
            load.ready()
            load.go()
            outcomes = load.result(timeout_s=120)
        client = stack.redis()
        finished = {task.id: seconds(task.completed_at) for task in tasks(client, "completed")}
        client.close()
    emit({"push": summary(outcomes["push"], finished), "poll_2s": summary(outcomes["poll"], finished)})


if __name__ == "__main__":
    main()
