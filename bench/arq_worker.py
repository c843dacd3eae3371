"""Raw arq, the baseline: `python -m bench.arq_worker REDIS_URL [--max-jobs N] [--poll-delay S]`
runs an arq worker whose one function does nothing, with arq's defaults otherwise."""

import argparse
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker

from bench.harness import raise_file_limit

ARQ_DEFAULT_MAX_JOBS = 10
ARQ_DEFAULT_POLL_DELAY_S = 0.5


async def noop(ctx: dict[str, Any]) -> None:
    """Does nothing."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("redis_url")
    parser.add_argument("--max-jobs", type=int, default=ARQ_DEFAULT_MAX_JOBS)
    parser.add_argument("--poll-delay", type=float, default=ARQ_DEFAULT_POLL_DELAY_S)
    args = parser.parse_args()
    raise_file_limit()
    worker = Worker(
        functions=[noop],
        redis_settings=RedisSettings.from_dsn(args.redis_url),
        max_jobs=args.max_jobs,
        poll_delay=args.poll_delay,
        handle_signals=True,
    )
    worker.run()


if __name__ == "__main__":
    main()
