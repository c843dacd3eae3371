"""Event latency: a handler's `ctx.progress()` → a WebSocket client receiving it, p50/p99, at 1,
100 and 1,000 subscribed clients; beside Litestar's ChannelsPlugin serving the same clients the
same events.

One worker runs a `bench.ticks` task reporting progress 10 times a second, each message the
`time.time()` of the call. jobcast's clients subscribe to that task on `/ws`; the plugin's
clients listen on jobcast's events channel itself (`/ws/jobcast:events`), so they get the same
published bytes. Clients offer permessage-deflate, as browsers do.
"""

import http.client
import json
import time
from typing import Any

from bench.harness import Stack, arguments, emit, generators
from bench.ws_side import clients, merged, subscribe_frame
from jobcast.store import keys

RATE_HZ = 10.0


def submit_ticks(port: int, count: int, delay_s: float) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = {"type": "bench.ticks", "parameters": {"rate_hz": RATE_HZ, "count": count, "delay_s": delay_s}}
    connection.request("POST", "/api/tasks", json.dumps(body), {"Content-Type": "application/json"})
    task_id = str(json.loads(connection.getresponse().read())["id"])
    connection.close()
    return task_id


def run(server: str, subscribers: int, ticks: int) -> dict[str, Any]:
    with Stack() as stack:
        api, port = stack.api()
        worker = stack.worker("bench.tasks")
        delay_s = 2.0 + subscribers / 500
        task_id = submit_ticks(port, ticks, delay_s)
        submitted_at = time.monotonic()
        if server == "jobcast":
            made = clients(port, subscribers, paths=["/ws"], subscribe=[subscribe_frame(task_id)])
            app = api
        else:
            stack.stop(api)
            app, baseline_port = stack.baseline()
            made = clients(baseline_port, subscribers, paths=[f"/ws/{keys.EVENTS_CHANNEL}"])
        client = stack.redis()
        with generators(*made):
            ready = [g.ready() for g in made]
            for generator in made:
                generator.go()
            for generator in made:
                generator.ready()  # counting
            cpu, worker_cpu = app.cpu_s(), worker.cpu_s()
            if time.monotonic() > submitted_at + delay_s:
                raise RuntimeError("the clients took longer to subscribe than the task waited")
            deadline = time.monotonic() + delay_s + ticks / RATE_HZ + 30
            while client.hget(keys.task(task_id), "doc").find(b'"completed"') < 0:  # type: ignore[union-attr]
                if time.monotonic() > deadline:
                    raise RuntimeError("the ticks task did not complete")
                time.sleep(0.1)
            time.sleep(1.0)
            server_cpu, worker_cpu = app.cpu_s() - cpu, worker.cpu_s() - worker_cpu
            for generator in made:
                generator.go("stop")
            received = merged([g.result() for g in made])
        client.close()
    received.pop("receiving_s")
    return {
        **received,
        "connected": sum(r["ready"] for r in ready),
        "expected": ticks * subscribers,
        "lost": ticks * subscribers - received["frames"],
        "server_cpu_s": round(server_cpu, 2),
        "worker_cpu_s": round(worker_cpu, 2),
    }


def main() -> None:
    args = arguments(__doc__ or "", ticks=50)
    counts = (1, 5) if args.quick else (1, 100, 1000)
    ticks = 5 if args.quick else args.ticks
    figures: dict[str, Any] = {"rate_hz": RATE_HZ}
    for subscribers in counts:
        for server in ("jobcast", "channels"):
            figures[f"{server}_{subscribers}"] = run(server, subscribers, ticks)
    emit(figures)


if __name__ == "__main__":
    main()
