"""Helpers of the WebSocket benches: tasks to watch, client and publisher generators, figures."""

import http.client
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import Generator

EXTERNAL_TYPE = "bench.external"


def create_tasks(port: int, count: int) -> list[dict[str, Any]]:
    """`count` tasks of an external type (records waiting to be claimed), for events to be about."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer: dict[str, Any] = json.loads(response.read())
        if response.status >= 400 and response.status != 409:
            raise RuntimeError(f"POST {path}: {response.status} {answer}")
        return answer

    post("/api/task-types", {"name": EXTERNAL_TYPE})
    made = [post("/api/tasks", {"type": EXTERNAL_TYPE}) for _ in range(count)]
    connection.close()
    return [{"id": t["id"], "type": t["type"], "owner": t["owner"], "seq": t["seq"]} for t in made]


def subscribe_frame(task_id: str) -> str:
    return json.dumps({"op": "subscribe", "task_id": task_id})


def clients(
    port: int,
    count: int,
    *,
    paths: list[str],
    subscribe: list[str] | None = None,
    compress: bool = True,
    processes: int = 1,
    at_once: bool = False,
) -> list[Generator]:
    """WebSocket clients split over `processes` generators, each connected and ready."""
    made = []
    for index in range(processes):
        share = count // processes + (1 if index < count % processes else 0)
        mine = range(index, count, processes)
        args = [str(port), "--count", str(share), "--paths", *[paths[i % len(paths)] for i in mine][:share]]
        if subscribe:
            args += ["--subscribe", *[subscribe[i % len(subscribe)] for i in mine][:share]]
        if compress:
            args.append("--compress")
        if not at_once:
            args += ["--connect-concurrency", "100"]
        made.append(Generator("bench.ws_clients", *args))
    return made


def publisher(
    redis_url: str, targets: list[Any], mode: str, rate: float, seconds: float, folder: Path
) -> Generator:
    path = folder / f"targets-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(targets))
    args = [redis_url, str(path), "--mode", mode, "--rate", str(rate), "--seconds", str(seconds)]
    return Generator("bench.publisher", *args)


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several client generators as one."""
    histogram: Counter[int] = Counter()
    closes: Counter[str] = Counter()
    for result in results:
        histogram.update({int(k): v for k, v in result["histogram"].items()})
        closes.update(result["closes"])
    return {
        "clients": sum(r["clients"] for r in results),
        "frames": sum(r["frames"] for r in results),
        "per_client_min": min(r["per_client_min"] for r in results),
        "clients_with_none": sum(r["clients_with_none"] for r in results),
        "closes": dict(closes),
        "cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "elapsed_s": max(r["elapsed_s"] for r in results),
        "receiving_s": round(
            max(r["last_at"] for r in results) - min(r["first_at"] or 1e12 for r in results), 3
        ),
        "compressed": sum(r["compressed"] for r in results),
        "p50_ms": histogram_percentile(histogram, 0.5),
        "p99_ms": histogram_percentile(histogram, 0.99),
        "max_ms": max(histogram, default=0) / 10,
        "histogram": {str(k): v for k, v in sorted(histogram.items())},
    }


def histogram_percentile(histogram: Counter[int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = max(1, round(fraction * total)), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) / 10  # the bucket's upper bound, in ms
    return None
