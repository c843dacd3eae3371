"""Clients of the "time to know" bench: each submits one task and learns when it finished,
by push (`/ws/tasks/{id}`, closed after the final event) or by polling its status URL every 2 s.

`python -m bench.know_clients PORT --push N --poll N --body JSON` prints `{"ready": true}`,
starts on `go`, and prints for every task when the client knew it had finished and how many
requests it sent (the submission included).
"""

import argparse
import asyncio
import json
import time
import urllib.request
from typing import Any

import websockets

from bench.harness import control_lines, say

POLL_S = 2.0


def request(port: int, method: str, path: str, body: str | None = None) -> dict[str, Any]:
    data = body.encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    message = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers, method=method)
    with urllib.request.urlopen(message, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


async def push(port: int, body: str) -> dict[str, Any]:
    task = await asyncio.to_thread(request, port, "POST", "/api/tasks", body)
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/tasks/{task['id']}") as connection:
        async for message in connection:
            frame = json.loads(message)
            final = (
                frame.get("event") == "task.completed" or frame.get("task", {}).get("status") == "completed"
            )
            if final:
                return {"id": task["id"], "knew_at": time.time(), "requests": 2}
    raise RuntimeError("closed before the final event")


async def poll(port: int, body: str) -> dict[str, Any]:
    task = await asyncio.to_thread(request, port, "POST", "/api/tasks", body)
    requests = 1
    while True:
        await asyncio.sleep(POLL_S)
        status = await asyncio.to_thread(request, port, "GET", f"/api/tasks/{task['id']}/status")
        requests += 1
        if status["ready"]:
            return {"id": task["id"], "knew_at": time.time(), "requests": requests}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    say({"ready": True})
    await asyncio.get_running_loop().run_in_executor(None, next, control_lines())
    bodies = json.loads(args.bodies)
    runs = [push(args.port, json.dumps(bodies[i])) for i in range(args.push)]
    runs += [poll(args.port, json.dumps(bodies[args.push + i])) for i in range(args.poll)]
    outcomes = await asyncio.gather(*runs)
    return {"push": outcomes[: args.push], "poll": outcomes[args.push :]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--push", type=int, default=10)
    parser.add_argument("--poll", type=int, default=10)
    parser.add_argument("--bodies", required=True, help="JSON list: one submission body per task")
    say(asyncio.run(main(parser.parse_args())))
