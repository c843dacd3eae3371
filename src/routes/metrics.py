"""GET /metrics in Prometheus text: the system's figures (stats.py, read from Redis, the same on
every API instance) and this process's own (its hub), the latter labelled with `process`."""

import os
import socket
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jobcast.events.fanout import HubCounters
from jobcast.store.stats import Stats

# Without its charset: the framework adds one to every text/* type.
CONTENT_TYPE = "; ".join(part.strip() for part in CONTENT_TYPE_LATEST.split(";") if "charset" not in part)
CLUSTER = " (whole system, from Redis)"
PROCESS = " (this API process)"


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Snapshot(Collector):
    """Figures read beforehand: collecting does no I/O."""

    def __init__(self, stats: Stats, hub: HubCounters, connections: int) -> None:
        self._stats = stats
        self._hub = hub
        self._connections = connections

    def collect(self) -> Iterator[Metric]:
        yield from _task_counters(self._stats)
        yield _durations(self._stats)
        yield from _gauges(self._stats)
        yield from _process(self._hub, self._connections)


def exposition(stats: Stats, hub: HubCounters, connections: int) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(stats, hub, connections))
    return generate_latest(registry)


def _task_counters(stats: Stats) -> Iterator[Metric]:
    for field, what in [
        ("submitted", "Tasks submitted"),
        ("completed", "Tasks that completed"),
        ("failed", "Tasks that failed (attempts spent, or failed by a PUT)"),
        ("cancelled", "Tasks cancelled (also when deleted while pending or running)"),
    ]:
        family = CounterMetricFamily(f"jobcast_tasks_{field}", what + CLUSTER, labels=["type"])
        for name, figures in stats.types.items():
            family.add_metric([name], getattr(figures, field))
        yield family
    events = CounterMetricFamily(
        "jobcast_events_published", "Task events stored and published" + CLUSTER, labels=["event"]
    )
    for kind, count in sorted(stats.events_published.items()):
        events.add_metric([kind], count)
    yield events


def _durations(stats: Stats) -> Metric:
    family = HistogramMetricFamily(
        "jobcast_task_duration_seconds",
        "How long the attempt that finished a task ran (started_at to completed_at)" + CLUSTER,
        labels=["type", "status"],
    )
    for durations in stats.durations:
        buckets = [(label, float(count)) for label, count in durations.buckets.items()]
        family.add_metric([durations.type, durations.status], buckets, durations.sum_s)
    return family


def _gauges(stats: Stats) -> Iterator[Metric]:
    tasks = GaugeMetricFamily("jobcast_tasks", "Tasks in the store now" + CLUSTER, labels=["type", "status"])
    for name, figures in stats.types.items():
        for status, count in figures.tasks.items():
            tasks.add_metric([name, status], count)
    yield tasks
    yield GaugeMetricFamily(
        "jobcast_queue_depth",
        "Pending tasks: queued or waiting out a retry's backoff" + CLUSTER,
        stats.queue_depth,
    )
    yield GaugeMetricFamily(
        "jobcast_workers_online", "Workers whose heartbeat is current" + CLUSTER, stats.workers_online
    )


def _process(hub: HubCounters, connections: int) -> Iterator[Metric]:
    label = [process_name()]
    gauge = GaugeMetricFamily(
        "jobcast_websocket_connections", "Open WebSocket connections" + PROCESS, labels=["process"]
    )
    gauge.add_metric(label, connections)
    yield gauge
    for name, what, value in [
        ("jobcast_events_received", "Events read from the events channel", hub.events_received),
        ("jobcast_events_delivered", "Event frames queued for WebSocket clients", hub.events_delivered),
        (
            "jobcast_websocket_slow_client_closes",
            "Clients closed with 1013: too slow to read",
            hub.slow_client_closes,
        ),
    ]:
        family = CounterMetricFamily(name, what + PROCESS, labels=["process"])
        family.add_metric(label, value)
        yield family
