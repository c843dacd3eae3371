"""Fan-out: WebSocket clients of one API process receiving progress events published on Redis,
beside Litestar's ChannelsPlugin serving the same clients the same events.

Scenarios (every client offers permessage-deflate, as browsers do):
- own_task: 1,000 clients each watching its own task, 10 events a second per task; jobcast's
  clients subscribe to their task, the plugin's each listen on a channel of their own.
- busy_1000 / busy_5000: 1,000 and 5,000 clients on one stream at 100 events a second (one
  task; one shared channel): frames delivered per second, anything lost, and server memory per
  connection (RSS after every client is connected and subscribed, minus before, over the count).
- storm: 1,000 clients connect and subscribe at the same instant to a freshly started server,
  each to its own task (channel); do they all receive their events?

Events come from bench.publisher, which publishes them exactly as jobcast's write script does
(the envelope with the client frame inside), so the API's hub and sockets are all that is
measured; the path from a handler's ctx.progress() is bench.events'.
"""

import time
from typing import Any

from bench.harness import Stack, arguments, emit, generators
from bench.ws_side import clients, create_tasks, merged, publisher, subscribe_frame

DRAIN_S = 3.0


def scenario(
    server: str,
    *,
    count: int,
    streams: int,
    rate: float,
    seconds: float,
    processes: int = 1,
    at_once: bool = False,
) -> dict[str, Any]:
    """`count` clients over `streams` streams (client i on stream i % streams)."""
    with Stack() as stack:
        if server == "jobcast":
            app, port = stack.api()
            targets: list[Any] = create_tasks(port, streams)
            paths = ["/ws"]
            subscribe = [subscribe_frame(t["id"]) for t in targets]
        else:
            app, port = stack.baseline()
            targets = [f"bench-{i}" for i in range(streams)]
            paths = [f"/ws/{name}" for name in targets]
            subscribe = []
        rss_before = app.rss()
        made = clients(port, count, paths=paths, subscribe=subscribe, processes=processes, at_once=at_once)
        pub = publisher(stack.redis_url, targets, "jobcast" if server == "jobcast" else "channels",
                        rate, seconds, stack.dir)  # fmt: skip
        with generators(*made, pub):
            ready = [g.ready() for g in made]
            pub.ready()
            rss_after = app.rss()
            cpu = app.cpu_s()
            for generator in made:
                generator.go()
            for generator in made:
                generator.ready()  # counting
            pub.go()
            published = pub.result(timeout_s=seconds * 3 + 60)
            time.sleep(DRAIN_S)
            server_cpu = app.cpu_s() - cpu
            for generator in made:
                generator.go("stop")
            received = merged([g.result() for g in made])
    connected = sum(r["ready"] for r in ready)
    expected = published["published"] * count // streams
    receiving_s = max(received.pop("receiving_s"), 1e-9)
    return {
        **received,
        "connected": connected,
        "connect_failures": [r["failed"] for r in ready if r["failed"]],
        "published": published["published"],
        "expected": expected,
        "lost": expected - received["frames"],
        "frames_per_s": round(received["frames"] / receiving_s, 1),
        "memory_per_connection_kib": round((rss_after - rss_before) / max(1, connected) / 1024, 1),
        "server_cpu_s": round(server_cpu, 2),
        "publisher_cpu_s": published["cpu_s"],
        "client_cpu_s": received["cpu_s"],
    }


SCENARIOS = {  # name: (clients, streams, events a second per stream, client processes, all at once)
    "own_task": (1000, 1000, 10.0, 1, False),
    "busy_1000": (1000, 1, 100.0, 1, False),
    "busy_5000": (5000, 1, 100.0, 2, False),
    "storm": (1000, 1000, 2.0, 1, True),
}


def main() -> None:
    args = arguments(__doc__ or "", seconds=5.0, only="")
    figures: dict[str, Any] = {}
    for name, (count, streams, rate, processes, at_once) in SCENARIOS.items():
        if args.only and name not in args.only.split(","):
            continue
        if args.quick:
            count, streams, seconds = min(count, 20), min(streams, 20), 1.0
        else:
            seconds = args.seconds
        for server in ("jobcast", "channels"):
            figures[f"{name}_{server}"] = scenario(
                server,
                count=count,
                streams=streams,
                rate=rate,
                seconds=seconds,
                processes=processes,
                at_once=at_once,
            )
    emit(figures)


if __name__ == "__main__":
    main()
