"""bench/RESULTS.md from the scripts' figures: the table beside baselines and targets, the CPU
each side used, the machine, and the plots."""

import datetime
import os
import platform
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from jobcast.runtime.redis_server import find_redis_server

Row = tuple[str, str, str, str, str]  # figure, jobcast, baseline, target, verdict
R = dict[str, Any]


def _get(results: R, *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**pass**" if ok else "**fail**")


def _check(value: Any, test: Callable[[Any], bool]) -> bool | None:
    return None if value is None else bool(test(value))


def _pair(figures: Any, unit: str = " ms") -> str:
    """`p50 / p99` of a figures dict."""
    figures = figures or {}
    return f"{_fmt(figures.get('p50_ms'))} / {_fmt(figures.get('p99_ms'))}{unit}"


def rows(r: R) -> list[Row]:
    found: list[Row] = []
    add = found.append
    sub, base = _get(r, "submit", "jobcast") or {}, _get(r, "submit", "bare_litestar") or {}
    rate, p99 = sub.get("per_s"), sub.get("p99_ms")
    add(
        (
            "submit: accepted/s, one API process",
            _fmt(rate),
            f"bare Litestar route {_fmt(base.get('per_s'))}",
            ">= 3,000",
            _verdict(_check(rate, lambda v: v >= 3000)),
        )
    )
    add(
        (
            "submit: response p50 / p99",
            _pair(sub),
            f"bare Litestar route {_pair(base)}",
            "p99 <= 20 ms",
            _verdict(_check(p99, lambda v: v <= 20)),
        )
    )
    runs = _get(r, "throughput") or {}
    mine, arq = _get(runs, "jobcast", "per_s"), _get(runs, "arq_max_jobs_100_poll_50ms", "per_s")
    arqs = (
        f"raw arq {_fmt(arq)} (max_jobs 100, 0.05 s poll); {_fmt(_get(runs, 'arq_max_jobs_100', 'per_s'))} "
        f"(max_jobs 100); {_fmt(_get(runs, 'arq_defaults', 'per_s'))} (defaults)"
    )
    ok = None if mine is None or arq is None else mine >= 2000 and mine >= arq
    add(("throughput: no-op tasks/s, one worker", _fmt(mine), arqs, ">= 2,000 and >= 1.0x arq", _verdict(ok)))
    pickup = _get(r, "pickup") or {}
    p50, p99 = _get(pickup, "jobcast", "p50_ms"), _get(pickup, "jobcast", "p99_ms")
    arqs = f"arq defaults {_pair(pickup.get('arq_defaults'))}; "
    arqs += f"arq 0.05 s poll {_pair(pickup.get('arq_poll_50ms'))}"
    ok = None if p50 is None or p99 is None else p50 <= 3 and p99 <= 20
    add(
        (
            "pickup: submit -> started at 100 tasks/s, p50 / p99",
            _pair(pickup.get("jobcast")),
            arqs,
            "<= 3 / <= 20 ms",
            _verdict(ok),
        )
    )
    events = _get(r, "events") or {}
    for key, figures in sorted(events.items()):
        if key.startswith("jobcast_"):
            n = key.removeprefix("jobcast_")
            other = events.get(f"channels_{n}") or {}
            add(
                (
                    f"event latency, progress() -> {n} client(s), p50 / p99",
                    f"{_pair(figures)} (lost {figures['lost']})",
                    f"ChannelsPlugin {_pair(other)} (lost {other.get('lost')})",
                    "-",
                    "-",
                )
            )
    found += _fanout_rows(r)
    push, poll = _get(r, "time_to_know", "push") or {}, _get(r, "time_to_know", "poll_2s") or {}
    add(
        (
            "time to know: mean lateness; requests per task",
            f"push {_fmt(push.get('mean_late_ms'))} ms; {_fmt(push.get('requests_per_task'))}",
            f"2 s poll {_fmt(poll.get('mean_late_ms'))} ms; {_fmt(poll.get('requests_per_task'))}",
            "-",
            "-",
        )
    )
    mine_c, arq_c = (
        _get(r, "commands", "jobcast") or {},
        _get(r, "commands", "arq_max_jobs_100_poll_50ms") or {},
    )
    mine, arq = mine_c.get("commands_per_task"), arq_c.get("commands_per_task")
    add(
        (
            "Redis commands per task (commandstats)",
            f"{_fmt(mine)} ({_fmt(mine_c.get('sent_by_clients_per_task'))} sent by clients)",
            f"raw arq {_fmt(arq)} ({_fmt(arq_c.get('sent_by_clients_per_task'))} sent by clients)",
            "< arq",
            _verdict(None if mine is None or arq is None else mine < arq),
        )
    )
    return found


def _fanout_rows(r: R) -> list[Row]:
    found: list[Row] = []
    fan = _get(r, "fanout") or {}
    own, other = fan.get("own_task_jobcast") or {}, fan.get("own_task_channels") or {}
    if own:
        ok = own["p99_ms"] is not None and own["p99_ms"] <= 50 and own["lost"] == 0
        found.append(
            (
                "1,000 clients, own task each, 10 events/s: p50 / p99",
                f"{_pair(own)}, lost {own['lost']:,}",
                f"ChannelsPlugin {_pair(other)}, lost {other.get('lost', 0):,}",
                "p99 <= 50 ms, none lost",
                _verdict(ok),
            )
        )
    for size in ("1000", "5000"):
        mine, base = fan.get(f"busy_{size}_jobcast") or {}, fan.get(f"busy_{size}_channels") or {}
        if not mine:
            continue
        ratio = mine["frames_per_s"] / base["frames_per_s"] if base.get("frames_per_s") else None
        ok = None if size != "1000" else ratio is not None and ratio >= 3 and mine["lost"] == 0
        closes = mine["closes"].get("1013", 0)
        found.append(
            (
                f"{int(size):,} clients on one stream at 100 events/s: frames/s, frames not received "
                "by the end of the run",
                f"{_fmt(mine['frames_per_s'])}/s, {mine['lost']:,} not received, {closes} closed with 1013",
                f"ChannelsPlugin {_fmt(base.get('frames_per_s'))}/s, {base.get('lost', 0):,} not received"
                + (f" (jobcast {ratio:.1f}x)" if ratio else ""),
                "none lost, >= 3x plugin" if size == "1000" else "-",
                _verdict(ok),
            )
        )
        kib = mine["memory_per_connection_kib"]
        found.append(
            (
                f"API memory per connection at {int(size):,} (client offers deflate)",
                f"{_fmt(kib)} KiB",
                f"ChannelsPlugin {_fmt(base.get('memory_per_connection_kib'))} KiB",
                "<= 30 KiB",
                _verdict(kib <= 30),
            )
        )
    storm, other = fan.get("storm_jobcast") or {}, fan.get("storm_channels") or {}
    if storm:
        ok = storm["clients_with_none"] == 0 and storm["connected"] == storm["clients"]
        found.append(
            (
                "1,000 clients subscribing at once to a fresh server: clients that got nothing",
                f"{storm['clients_with_none']} of {storm['connected']}",
                f"ChannelsPlugin {other.get('clients_with_none')} of {other.get('connected')}",
                "0",
                _verdict(ok),
            )
        )
    return found


def cpu_rows(r: R) -> list[tuple[str, str, str]]:
    """What the servers used beside what the load generators used, per bench."""
    found = []
    sub = _get(r, "submit", "jobcast") or {}
    if sub:
        found.append(
            (
                "submit: API / HTTP generator",
                _fmt(sub.get("server_cpu_s"), " s"),
                _fmt(sub.get("cpu_s"), " s"),
            )
        )
    for key, figures in sorted((_get(r, "fanout") or {}).items()):
        if isinstance(figures, dict) and "server_cpu_s" in figures:
            load = f"{_fmt(figures['client_cpu_s'], ' s')} + {_fmt(figures['publisher_cpu_s'], ' s')}"
            found.append(
                (f"fanout {key}: server / clients + publisher", _fmt(figures["server_cpu_s"], " s"), load)
            )
    for key, figures in sorted((_get(r, "events") or {}).items()):
        if isinstance(figures, dict) and "server_cpu_s" in figures:
            server = _fmt(figures["server_cpu_s"], " s")
            found.append((f"events {key}: server / clients", server, _fmt(figures["cpu_s"], " s")))
    return found


def machine() -> list[str]:
    model = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    binary = find_redis_server(os.environ.get("JOBCAST_REDIS_SERVER"))
    redis_version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    version = next((w.split("=", 1)[1] for w in redis_version if w.startswith("v=")), "?")
    names = ("arq", "litestar", "uvicorn", "websockets", "redis", "msgspec")
    packages = ", ".join(f"{name} {metadata.version(name)}" for name in names)
    return [
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {os.cpu_count()} cores, {model}",
        f"- Python {platform.python_version()}, Redis {version} (loopback, AOF everysec), {packages}",
    ]


# Why a target may be missed on this machine, and what would lift it; bench/NOTES.md has the
# profiles behind each sentence. Keyed by the start of the figure's name in the table.
HELD_BACK = {
    "submit: accepted": (
        "An API process spends about 0.3 ms of CPU per submission, beside 0.07 ms for a bare Litestar "
        "route: decoding and checking the body, the type's JSON Schema (jsonschema, in Python), two Redis "
        "round trips through redis-py (the listing rank, then the write script) and the answer. Taking the "
        "rank inside the write script would save a round trip; API processes share nothing but Redis, so "
        "more of them behind a balancer add up."
    ),
    "throughput": (
        "Per task, the worker runs arq's own job steps (the job read, the retry counter, the cleanup) and "
        "jobcast's start and finish writes (record, history, listing indexes, event, counters): it is level "
        "with raw arq within the spread between runs, not ahead of it. A job protocol of jobcast's own, one "
        "script to claim and start and one to finish, instead of arq's steps around them, would lift it."
    ),
    "1,000 clients on one stream": (
        "1,000 clients at 100 events/s ask for 100,000 frames/s: jobcast delivers them as fast as they are "
        "published, nothing lost, so the ratio is bounded by what the plugin manages on the same machine "
        "(here it nearly keeps up). Where both fall behind, at 5,000 clients, see the ratio in that row."
    ),
    "API memory per connection": (
        "What is left is uvicorn's and websockets' own per-connection state (the handshake request, a "
        "queue, a ping timer) and the connection's two tasks; see bench/NOTES.md."
    ),
    "Redis commands per task": (
        "Fewer commands are sent by clients than arq's, but jobcast's write scripts also keep the 8 listing "
        "indexes, each event's history entry and publication, and the counters behind /metrics, on top of "
        "arq's own job steps. Below 23 would need both fewer indexes (losing the constant cost of a page) "
        "and a job protocol of jobcast's own instead of arq's."
    ),
}


def held_back(table: list[Row]) -> list[str]:
    """A section for the targets this run missed, each with what holds it back."""
    missed = [row[0] for row in table if row[4] == _verdict(False)]
    if not missed:
        return []
    lines = ["## Targets missed in this run, and what holds them back", ""]
    for figure in missed:
        reason = next((text for start, text in HELD_BACK.items() if figure.startswith(start)), None)
        lines.append(f"- **{figure}**: {reason or 'see bench/NOTES.md.'}")
    return [*lines, ""]


def write_report(results: R, context: R, out: Path) -> None:
    from bench.plots import draw

    pictures = draw(results, out)
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench`; `bench/NOTES.md` says what the figures mean,",
        "what limits them and what was changed for them.",
        "",
    ]
    if context.get("quick"):
        lines += ["**Quick mode: tiny counts, these figures mean nothing.**", ""]
    lines += ["## Machine", "", *machine(), f"- the whole run took {context['wall_s']} s", ""]
    shared = context.get("others_cpu_s") or {}
    if shared:
        lines += ["The machine was shared: other processes used CPU during the run (seconds):", ""]
        lines += [f"- `{name}`: {cpu}" for name, cpu in sorted(shared.items(), key=lambda kv: -kv[1])[:8]]
        lines.append("")
    else:
        lines += ["No other process used a second of CPU or more during the run.", ""]
    lines += [
        "## Figures",
        "",
        "| figure | jobcast | baseline, same run | target | |",
        "| --- | --- | --- | --- | --- |",
    ]
    table = rows(results)
    lines += [f"| {' | '.join(row)} |" for row in table]
    runs = _get(results, "throughput", "runs") or 1
    lines += [
        "",
        f"Medians of {runs} runs for throughput, pickup and submit; the WebSocket figures are",
        "percentiles over every frame of one run.",
        "",
    ]
    lines += held_back(table)
    lines += [
        "## CPU: servers beside load generators",
        "",
        "| bench | server | load generators |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in cpu_rows(results)]
    lines.append("")
    if pictures:
        lines += ["## Plots", ""] + [f"![{title}]({name})" for name, title in pictures] + [""]
    (out / "RESULTS.md").write_text("\n".join(lines))
