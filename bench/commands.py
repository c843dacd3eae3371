"""Redis commands per task, from INFO commandstats, beside raw arq's per no-op job.

Each side submits `count` no-op tasks (jobs) while its worker runs, then the calls in
commandstats over the whole run are divided by the count: submission, polling, the job, its
result, heartbeats and reconciler passes all included, as arq's 23 were counted. MONITOR runs
beside (it slows Redis, which is why this is not the throughput bench) to tell the commands a
client sent from those a Lua script ran: a script is one round trip whatever it runs.
"""

import socket
import threading
from typing import Any

from bench import arq_side
from bench.harness import Stack, arguments, emit
from bench.jobcast_side import (
    calls_between,
    command_calls,
    completed_count,
    declare_types,
    submit,
    wait_for,
)

TIMEOUT_S = 120.0


class Monitor(threading.Thread):
    """Counts MONITOR lines: those a Lua script ran, and those clients sent."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.lua = 0
        self.sent = 0
        self.stopped = False

    def run(self) -> None:
        rest = b""
        while not self.stopped:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            lines = (rest + chunk).split(b"\r\n")
            rest = lines.pop()
            for line in lines:
                if line.startswith(b"+OK"):
                    continue
                if b" lua] " in line:
                    self.lua += 1
                else:
                    self.sent += 1

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
        self.join(5)


def measure(stack: Stack, run: Any, count: int) -> dict[str, Any]:
    client = stack.redis()
    monitor = Monitor(stack.redis_server.port)
    monitor.start()
    before = command_calls(client)
    run()
    after = command_calls(client)
    monitor.stop()
    client.close()
    calls = calls_between(before, after)
    calls.pop("monitor", None)
    total = sum(calls.values())
    return {
        "commands_per_task": round(total / count, 1),
        "sent_by_clients_per_task": round(monitor.sent / count, 1),
        "run_by_scripts_per_task": round(monitor.lua / count, 1),
        "top_commands_per_task": {
            name: round(n / count, 2) for name, n in sorted(calls.items(), key=lambda kv: -kv[1])[:12]
        },
    }


def jobcast(count: int) -> dict[str, Any]:
    with Stack(JOBCAST_POLL_S="0.05") as stack:
        _, port = stack.api()
        declare_types(stack)
        stack.worker("bench.tasks", concurrency=100)
        client = stack.redis()

        def run() -> None:
            submit(port, count, connections=8)
            if not wait_for(lambda: completed_count(client) >= count, TIMEOUT_S):
                raise RuntimeError("not every task completed")

        figures = measure(stack, run, count)
        client.close()
    return figures


def arq(count: int) -> dict[str, Any]:
    with Stack() as stack:
        arq_side.start_worker(stack, 100, 0.05)
        client = stack.redis()

        def run() -> None:
            arq_side.enqueue(stack.redis_url, count)
            if not arq_side.wait_drained(client, count, TIMEOUT_S):
                raise RuntimeError("arq did not run every job")

        figures = measure(stack, run, count)
        client.close()
    return figures


def main() -> None:
    args = arguments(__doc__ or "", count=2000)
    count = 30 if args.quick else args.count
    emit({"count": count, "jobcast": jobcast(count), "arq_max_jobs_100_poll_50ms": arq(count)})


if __name__ == "__main__":
    main()
