"""What this API process's hub has done: figures of one process, not of the system."""

from dataclasses import dataclass


@dataclass
class HubCounters:
    events_received: int = 0  # from the events channel
    events_delivered: int = 0  # event frames queued for WebSocket clients
    slow_client_closes: int = 0  # clients closed with 1013: their buffer was full
