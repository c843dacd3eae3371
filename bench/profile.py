"""Where the time goes: py-spy samples one process under load and this prints the functions
with the largest share of samples, by own time and by inclusive time, as one JSON line.

`python -m bench.profile submit|worker|hub [--seconds S]`
- submit: the API while the HTTP generator submits no-op tasks (no worker runs);
- worker: one worker draining queued no-op tasks;
- hub: the API fanning 100 events a second out to 1,000 WebSocket clients.
Needs py-spy (the bench extra) and the right to trace processes (root, or ptrace allowed).
"""

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import Child, Stack, emit, generators
from bench.jobcast_side import declare_types, submit
from bench.ws_side import clients, create_tasks, publisher, subscribe_frame

TOP = 15


def sample(pid: int, seconds: float, folder: Path) -> list[tuple[list[str], int]]:
    """py-spy's collapsed stacks of `pid` over `seconds`."""
    out = folder / f"profile-{pid}.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw",
               "--output", str(out), "--rate", "200", "--nonblocking"]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True, timeout=seconds + 60)
    stacks = []
    for line in out.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    return stacks


def _name(frame: str) -> str:
    """`function (path/file.py:line)` → `function (file.py)` with the package's folder."""
    function, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{function} ({'/'.join(parts[-2:])})"


def shares(stacks: list[tuple[list[str], int]]) -> dict[str, Any]:
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        named = [_name(frame) for frame in frames]
        own[named[-1]] += count
        for name in set(named):
            inclusive[name] += count
    return {
        "samples": total,
        "own_pct": {name: round(100 * n / total, 1) for name, n in own.most_common(TOP)},
        "inclusive_pct": {name: round(100 * n / total, 1) for name, n in inclusive.most_common(TOP * 2)},
    }


def while_loaded(target: Child, load: Any, seconds: float, folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(load=load()))
    thread.start()
    stacks = sample(target.pid, seconds, folder)
    thread.join()
    return shares(stacks)


def main() -> None:
    which, seconds = sys.argv[1], float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    with Stack(JOBCAST_POLL_S="0.05") as stack:
        api, port = stack.api()
        declare_types(stack)
        if which == "submit":
            figures = while_loaded(api, lambda: submit(port, 20000, connections=8), seconds, stack.dir)
        elif which == "worker":
            submit(port, 15000, connections=8)
            stack.stop(api)
            worker = stack.worker("bench.tasks", concurrency=100)
            figures = shares(sample(worker.pid, seconds, stack.dir))
        else:
            targets = create_tasks(port, 1)
            made = clients(port, 1000, paths=["/ws"], subscribe=[subscribe_frame(targets[0]["id"])])
            pub = publisher(stack.redis_url, targets, "jobcast", 100.0, seconds + 5, stack.dir)
            with generators(*made, pub):
                for generator in made:
                    generator.ready()
                pub.ready()
                pub.go()
                figures = shares(sample(api.pid, seconds, stack.dir))
    emit({"path": which, **figures})


if __name__ == "__main__":
    main()
