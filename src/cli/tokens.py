"""`jobcast token create|list|revoke`: manage API tokens straight in Redis."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from jobcast.errors import JobcastError
from jobcast.model.principals import Role
from jobcast.settings import Settings
from jobcast.store.tokens import TokenStore

Command = Callable[[TokenStore, argparse.Namespace], Awaitable[None]]


def add_token_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    token = commands.add_parser("token", help="create, list or revoke API tokens")
    actions = token.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="print a new token once (only its hash is stored)")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", required=True, help="the principal: owner of what it submits")
    create.add_argument("--types", default="", help="comma-separated task types a worker token serves")
    create.set_defaults(run=_runner(_create))
    listing = actions.add_parser("list", help="the tokens' names, roles and types (never the tokens)")
    listing.set_defaults(run=_runner(_list))
    revoke = actions.add_parser("revoke", help="make a token fail at once")
    revoke.add_argument("name")
    revoke.set_defaults(run=_runner(_revoke))


def _runner(command: Command) -> Callable[[Settings, argparse.Namespace], None]:
    def run(settings: Settings, args: argparse.Namespace) -> None:
        try:
            asyncio.run(_with_store(settings, args, command))
        except JobcastError as error:
            sys.exit(f"jobcast token: {error.detail}")

    return run


async def _with_store(settings: Settings, args: argparse.Namespace, command: Command) -> None:
    redis = Redis.from_url(settings.redis_url_or_default())
    try:
        await command(TokenStore(redis), args)
    finally:
        await redis.aclose()


async def _create(store: TokenStore, args: argparse.Namespace) -> None:
    types = [name.strip() for name in args.types.split(",") if name.strip()]
    record, token = await store.create(args.name, Role(args.role), types)
    serves = f", serving {', '.join(record.types)}" if record.types else ""
    print(f"token for {record.name} (role {record.role}{serves}); it is shown only now:")
    print(token)


async def _list(store: TokenStore, args: argparse.Namespace) -> None:
    for record in await store.all():
        types = ",".join(record.types) or "-"
        print(f"{record.name}\t{record.role}\t{types}\t{record.created_at:%Y-%m-%d %H:%M}")


async def _revoke(store: TokenStore, args: argparse.Namespace) -> None:
    await store.revoke(args.name)
    print(f"revoked {args.name}")
