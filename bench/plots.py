"""The plots of bench/RESULTS.md: throughput over time, and latency distributions."""

from pathlib import Path
from typing import Any

Picture = tuple[str, str]  # file name, title


def draw(results: dict[str, Any], out: Path) -> list[Picture]:
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:  # the bench extra brings it; without it, a report without plots
        return []
    drawn = []
    for name, title, painter in (
        ("throughput.png", "Completions per second over the run, one worker", _throughput),
        ("latency.png", "Latency distributions", _latency),
    ):
        if painter(results, out / name):
            drawn.append((name, title))
    return drawn


def _throughput(results: dict[str, Any], path: Path) -> bool:
    import matplotlib.pyplot as plt

    runs = results.get("throughput") or {}
    series = {
        k: v["timeline_100ms"] for k, v in runs.items() if isinstance(v, dict) and "timeline_100ms" in v
    }
    if not series:
        return False
    figure, axes = plt.subplots(figsize=(8, 4))
    for name, bins in series.items():
        axes.plot([i / 10 for i in range(len(bins))], [n * 10 for n in bins], label=name.replace("_", " "))
    axes.set_xlabel("seconds since the first completion")
    axes.set_ylabel("completed per second (100 ms bins)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return True


def _cdf(axes: Any, values_ms: list[float], label: str) -> None:
    if values_ms:
        ordered = sorted(values_ms)
        axes.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)


def _from_histogram(histogram: dict[str, int]) -> list[float]:
    values: list[float] = []
    for bucket, count in histogram.items():
        values += [int(bucket) / 10] * min(count, 20000)
    return values


def _latency(results: dict[str, Any], path: Path) -> bool:
    import matplotlib.pyplot as plt

    pickup = results.get("pickup") or {}
    fanout = results.get("fanout") or {}
    if not pickup and not fanout:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("jobcast", "arq_defaults", "arq_poll_50ms"):
        _cdf(left, (pickup.get(key) or {}).get("delays_ms", []), key.replace("_", " "))
    left.set_xscale("log")
    left.set_title("pickup: submit → started, 100 tasks/s")
    for key in ("own_task_jobcast", "own_task_channels", "busy_1000_jobcast", "busy_1000_channels"):
        _cdf(right, _from_histogram((fanout.get(key) or {}).get("histogram", {})), key.replace("_", " "))
    right.set_xscale("log")
    right.set_title("publish → WebSocket client, 1,000 clients")
    for axes in (left, right):
        axes.set_xlabel("ms (log)")
        axes.set_ylabel("fraction of samples")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return True
