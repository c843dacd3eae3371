"""The `jobcast` command: dev (everything at once), api, worker, health, token."""

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

import msgspec

from jobcast.auth.log_redaction import redact_logs
from jobcast.cli.tokens import add_token_commands
from jobcast.runtime.logs import configure_logging
from jobcast.settings import Settings, SettingsError

DEMO_MODULE = "jobcast.demo"  # the tasks a bare `jobcast worker` serves (CONTRACT.md §8)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        sys.exit(f"jobcast: {error}")
    configure_logging(settings.log_level)
    redact_logs()
    args.run(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobcast", description="Long-running jobs with live status.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run Redis (unless JOBCAST_REDIS_URL is set), the API and a worker")
    _add_address(dev)
    dev.set_defaults(run=_dev)

    api = commands.add_parser("api", help="run the HTTP and WebSocket API")
    _add_address(api)
    api.add_argument("--insecure", action="store_true", help="run without authentication: anyone is admin")
    api.set_defaults(run=_api)

    worker = commands.add_parser("worker", help="run a worker")
    worker.add_argument(
        "--tasks", nargs="+", metavar="MODULE", default=[DEMO_MODULE],
        help=f"modules whose @task handlers to serve (default: {DEMO_MODULE})",
    )  # fmt: skip
    worker.add_argument("--concurrency", type=int, help="tasks run at once (JOBCAST_WORKER_CONCURRENCY)")
    worker.set_defaults(run=_worker)

    health = commands.add_parser("health", help="exit 0 if this host's api is ready or its worker is alive")
    health.add_argument("component", choices=["api", "worker"])
    health.set_defaults(run=_health)
    add_token_commands(commands)
    return parser


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (JOBCAST_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (JOBCAST_PORT)")


def _with_address(settings: Settings, args: argparse.Namespace) -> Settings:
    changes = {name: value for name in ("host", "port") if (value := getattr(args, name)) is not None}
    return msgspec.structs.replace(settings, **changes)


def _api(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from jobcast.routes.app import create_app, server_options

    settings = _with_address(settings, args)
    if args.insecure:
        settings = msgspec.structs.replace(settings, auth=False)
        logging.getLogger("jobcast").warning("auth is off (--insecure): every caller is an admin")
    elif not settings.auth:
        sys.exit("jobcast api: JOBCAST_AUTH is off; pass --insecure to run without authentication")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go through jobcast's JSON handler
        **server_options(settings),
    )


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    from jobcast.workers.definition import discover
    from jobcast.workers.lifecycle import build_worker

    if args.concurrency is not None:
        settings = msgspec.structs.replace(settings, worker_concurrency=max(1, args.concurrency))
    with contextlib.suppress(ImportError):  # not on Windows
        import uvloop

        asyncio.set_event_loop(uvloop.new_event_loop())  # arq runs on the current loop
    try:
        definitions = discover(args.tasks)
        worker = build_worker(settings, definitions)
    except (ImportError, TypeError, ValueError) as error:
        sys.exit(f"jobcast worker: {error}")
    worker.run()


def _dev(settings: Settings, args: argparse.Namespace) -> None:
    from jobcast.cli.dev import run_dev

    sys.exit(run_dev(_with_address(settings, args)))


def _health(settings: Settings, args: argparse.Namespace) -> None:
    from jobcast.cli.health import api_ready, worker_alive

    healthy = api_ready(settings.host, settings.port) if args.component == "api" else worker_alive(settings)
    print(f"{args.component}: {'ok' if healthy else 'not ok'}")
    sys.exit(0 if healthy else 1)
