"""`jobcast health api|worker`: exit 0 when this host's API is ready or its worker heartbeats.
For container health checks."""

import socket
import time
import urllib.request

import msgspec
import redis

from src import keys
from src.settings import Settings
from src.workers.heartbeat import WorkerInfo

TIMEOUT_S = 3.0


def api_ready(host: str, port: int) -> bool:
    """GET /health/ready of the API listening on host:port answers 200."""
    url = f"http://{client_host(host)}:{port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def client_host(host: str) -> str:
    """Where to reach an API that listens on `host` (all interfaces: loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def worker_alive(settings: Settings) -> bool:
    """A worker on this host has a heartbeat that has not expired."""
    client = redis.Redis.from_url(settings.redis_url_or_default(), socket_timeout=TIMEOUT_S)
    try:
        live = client.zrangebyscore(keys.WORKERS, int(time.time() * 1000), "+inf")
        docs = client.mget([keys.worker(w.decode()) for w in live]) if live else []
    except redis.RedisError:
        return False
    finally:
        client.close()
    hostname = socket.gethostname()
    return any(msgspec.json.decode(doc, type=WorkerInfo).hostname == hostname for doc in docs if doc)
