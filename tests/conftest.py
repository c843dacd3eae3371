"""Fixtures on real parts: a redis-server per test on a free port, the app served by uvicorn on
port 0, workers and APIs as subprocesses running the `jobcast` command, headless Chromium."""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from redis.asyncio import Redis

from jobcast.routes.app import create_app, server_options
from jobcast.runtime.redis_server import RedisServer, find_redis_server
from jobcast.settings import Settings
from tests.helpers.browser import CHROMIUM_ARGS, WAIT_MS, chromium
from tests.helpers.processes import JobcastProcess, start_worker

FAST = {
    "auth": False,  # tests of authentication turn it on
    "poll_s": 0.05,
    "retry_backoff_s": 0.05,
    "retry_backoff_max_s": 0.2,
    "heartbeat_s": 0.2,
    "cancel_grace_s": 2.0,
    "shutdown_grace_s": 1,  # tests stop workers that still run long tasks
}


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return find_redis_server(os.environ.get("JOBCAST_REDIS_SERVER"))


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(redis_url=redis_server.url, **FAST)  # type: ignore[arg-type]


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url_or_default())
    yield client
    await client.aclose()


class ServedApp:
    """The app served by uvicorn in this test's event loop, on a port the OS picked."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            **server_options(settings),
        )
        self.server = uvicorn.Server(config)
        self._serving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "ServedApp":
        self._serving = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(10):
            while not self.server.started:
                if self._serving.done():
                    self._serving.result()
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        assert self._serving is not None
        await asyncio.wait_for(self._serving, 15)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[ServedApp]:
    async with ServedApp(settings) as served:
        yield served


@pytest.fixture
async def http(app: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as client:
        yield client


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[JobcastProcess]:
    """A `jobcast worker` subprocess serving the demo types, started and registered."""
    process = start_worker(settings, tmp_path / "worker.log")
    yield process
    process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh tab, 1440 by 900; a script error on the page fails the test."""
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, errors
