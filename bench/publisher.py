"""Event publisher for fan-out benches: progress events at a steady rate, published on Redis the
way jobcast's write script publishes them, or as plain frames on channels for the ChannelsPlugin.

`python -m bench.publisher REDIS_URL TARGETS_JSON --mode jobcast|channels --rate R --seconds S`
prints `{"ready": true}`, starts on the line `go`, and prints what it published.

- jobcast: each target is a task `{"id", "type", "owner", "seq"}`; its events are envelopes
  (jobcast.store.envelope) on jobcast's events channel, seq counting on from the task's own.
- channels: each target is a channel name; the message is the same event frame.

Each event's progress message is `t=<time.time()>` at publication: what the clients time.
Events go out in 10 ms ticks, round robin over the targets, `rate` per target per second.
"""

import argparse
import json
import time
from typing import Any

import msgspec
import redis

from bench.harness import control_lines, say
from jobcast.events.protocol import event_frame
from jobcast.model.tasks import Event, EventKind, Progress, TaskStatus, utc_now
from jobcast.store import keys
from jobcast.store.envelope import Envelope, encode_envelope

TICK_S = 0.01
encode = msgspec.json.Encoder().encode


class Target:
    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.seq = int(spec["seq"]) if isinstance(spec, dict) else 0


def event_json(target: Target, step: int) -> bytes:
    task_id = target.spec["id"] if isinstance(target.spec, dict) else target.spec
    progress = Progress(current=step, message=f"t={time.time():.6f}")
    event = Event(task_id=task_id, seq=target.seq, event=EventKind.PROGRESS, at=utc_now(),
                  status=TaskStatus.RUNNING, attempt=1, progress=progress)  # fmt: skip
    return encode(event)


def jobcast_message(target: Target, step: int) -> tuple[str, bytes]:
    target.seq += 1
    spec = target.spec
    envelope = Envelope(task_id=spec["id"], seq=target.seq, task_type=spec["type"], owner=spec["owner"],
                        kind=EventKind.PROGRESS, event=msgspec.Raw(event_json(target, step)))  # fmt: skip
    return keys.EVENTS_CHANNEL, encode_envelope(envelope)


def channels_message(target: Target, step: int) -> tuple[str, bytes]:
    return str(target.spec), event_frame(event_json(target, step)).encode()


def publish(client: redis.Redis, targets: list[Target], mode: str, rate: float, seconds: float) -> int:
    message = jobcast_message if mode == "jobcast" else channels_message
    per_tick = rate * len(targets) * TICK_S
    total = int(rate * len(targets) * seconds)
    sent, owed, turn = 0, 0.0, 0
    start = time.monotonic()
    tick = 0
    while sent < total:
        tick += 1
        owed += per_tick
        pipe = client.pipeline(transaction=False)
        while owed >= 1 and sent < total:
            target = targets[turn % len(targets)]
            pipe.publish(*message(target, turn // len(targets) + 1))
            turn += 1
            sent += 1
            owed -= 1
        pipe.execute()
        time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
    return sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("redis_url")
    parser.add_argument("targets_json")
    parser.add_argument("--mode", choices=["jobcast", "channels"], required=True)
    parser.add_argument("--rate", type=float, required=True, help="events a second per target")
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    with open(args.targets_json) as file:
        targets = [Target(spec) for spec in json.load(file)]
    client = redis.Redis.from_url(args.redis_url)
    say({"ready": True})
    next(control_lines())
    cpu, started = time.process_time(), time.perf_counter()
    sent = publish(client, targets, args.mode, args.rate, args.seconds)
    elapsed_s = time.perf_counter() - started
    say({"published": sent, "elapsed_s": round(elapsed_s, 3), "cpu_s": round(time.process_time() - cpu, 3)})


if __name__ == "__main__":
    main()
