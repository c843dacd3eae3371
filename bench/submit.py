"""Submit: `POST /api/tasks` accepted per second by one API process, with the p50/p99 response
time, beside a bare Litestar POST route (decode, answer 202, store nothing) under the same load.

The load generator keeps `connections` requests outstanding (closed loop) on keep-alive
connections. No worker runs: the tasks stay queued, and only the API and Redis are measured.
"""

from typing import Any

from bench.harness import Stack, arguments, emit
from bench.jobcast_side import declare_types, process_cpu_s, submit

CONNECTIONS = 8


def jobcast(count: int) -> dict[str, Any]:
    with Stack() as stack:
        api, port = stack.api()
        declare_types(stack)
        submit(port, max(10, count // 10), connections=CONNECTIONS)  # warm-up, not measured
        redis_pid = stack.redis_server.process.pid  # type: ignore[union-attr]
        api_cpu, redis_cpu = api.cpu_s(), process_cpu_s(redis_pid)
        figures = submit(port, count, connections=CONNECTIONS, keep_latencies=True)
        figures["server_cpu_s"] = round(api.cpu_s() - api_cpu, 2)
        figures["redis_cpu_s"] = round(process_cpu_s(redis_pid) - redis_cpu, 2)
    return figures


def bare_litestar(count: int) -> dict[str, Any]:
    with Stack() as stack:
        app, port = stack.baseline()
        submit(port, max(10, count // 10), connections=CONNECTIONS)
        cpu = app.cpu_s()
        figures = submit(port, count, connections=CONNECTIONS)
        figures["server_cpu_s"] = round(app.cpu_s() - cpu, 2)
    return figures


def main() -> None:
    args = arguments(__doc__ or "", count=6000)
    count = 50 if args.quick else args.count
    emit({"connections": CONNECTIONS, "jobcast": jobcast(count), "bare_litestar": bare_litestar(count)})


if __name__ == "__main__":
    main()
