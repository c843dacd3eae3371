"""`python -m bench [--quick] [--only a,b] [--runs N]`: run every bench script, each in a process
of its own, and write bench/RESULTS.md with the figures, the machine and the plots.

Scripts whose figures move from run to run (rates, pickup latency) run `--runs` times (3) and
report the median of each figure; the WebSocket benches take their percentiles over thousands of
samples within one run and run once.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.report import write_report

HERE = Path(__file__).parent
SCRIPTS = {  # name: repeated for medians
    "throughput": True,
    "commands": False,
    "pickup": True,
    "submit": True,
    "events": False,
    "fanout": False,
    "time_to_know": False,
}
TIMEOUT_S = 1200


def run_script(name: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.{name} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"bench.{name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return figures


def median_of(runs: list[Any]) -> Any:
    """Each number the median over runs; anything else (lists, text) from the first run."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: median_of([run[key] for run in runs if key in run]) for key in first}
    if (
        isinstance(first, (int, float))
        and not isinstance(first, bool)
        and all(isinstance(run, (int, float)) for run in runs)
    ):
        return round(statistics.median(runs), 2)
    return first


def others_cpu_s() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process that is not this run's, by pid: was the machine shared?"""
    mine = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    found: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        if process.pid in mine or process.info["cpu_times"] is None:
            continue
        times = process.info["cpu_times"]
        label = " ".join((process.info["cmdline"] or [process.info["name"] or "?"])[:3])[:80]
        found[process.pid] = (label, float(times.user + times.system))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that everything runs")
    parser.add_argument("--only", default="", help="comma-separated scripts (default: all)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(HERE), help="folder for RESULTS.md and the plots")
    args = parser.parse_args()
    wanted = [name for name in SCRIPTS if not args.only or name in args.only.split(",")]
    before, started = others_cpu_s(), time.monotonic()
    results: dict[str, Any] = {}
    for name in wanted:
        runs = args.runs if SCRIPTS[name] and not args.quick else 1
        results[name] = median_of([run_script(name, args.quick) for _ in range(runs)])
        results[name]["runs"] = runs
    after = others_cpu_s()
    shared = {
        after[pid][0]: round(after[pid][1] - before[pid][1], 1)
        for pid in after
        if pid in before and after[pid][1] - before[pid][1] >= 1.0
    }
    context = {"wall_s": round(time.monotonic() - started), "others_cpu_s": shared, "quick": args.quick}
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps({"context": context, **results}, indent=1) + "\n")
    write_report(results, context, out)
    print(f"wrote {out / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
