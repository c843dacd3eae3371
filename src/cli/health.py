"""`jobcast health api|worker`: exit 0 when this host's API is ready or its worker heartbeats.
For container health checks."""

import socket
import urllib.request

import redis

from jobcast.runtime.network import client_host
from jobcast.settings import Settings
from jobcast.store.workers import live_workers_now

TIMEOUT_S = 3.0


def api_ready(host: str, port: int) -> bool:
    """GET /health/ready of the API listening on host:port answers 200."""
    url = f"http://{client_host(host)}:{port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def worker_alive(settings: Settings) -> bool:
    """A worker on this host has a heartbeat that has not expired."""
    client = redis.Redis.from_url(settings.redis_url_or_default(), socket_timeout=TIMEOUT_S)
    try:
        workers = live_workers_now(client)
    except redis.RedisError:
        return False
    finally:
        client.close()
    return any(worker.hostname == socket.gethostname() for worker in workers)
