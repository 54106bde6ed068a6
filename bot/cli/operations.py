"""`run`, `sync`, `credits` and `backup`: the operator's commands that are not one job."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
import discord

from bot.app import GatewayUnreachableError
from bot.cli.checks import TOKEN_HELP, discord_unreachable
from bot.cli.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, CliError
from bot.settings import Settings
from storage.backup import backup_database_async

T = TypeVar("T")

TOKEN_REFUSED = "Discord refused the bot token; copy it again from the developer portal."


async def talking_to_discord(call: Awaitable[T]) -> T:
    """Await something that logs in to Discord; its failures become one sentence each."""
    try:
        return await call
    except discord.LoginFailure:
        raise CliError(TOKEN_REFUSED, EXIT_FAILED) from None
    except GatewayUnreachableError as exc:
        raise CliError(
            f"Could not reach Discord's gateway at {exc.url}; check the network, or FLUXCORD_DISCORD_GATEWAY_URL "
            "if you set it.",
            EXIT_UNREACHABLE,
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise CliError("Discord refused a privileged intent; Fluxcord needs none, so check the code.") from None
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        raise CliError(discord_unreachable(exc), EXIT_UNREACHABLE) from None
    except discord.HTTPException as exc:
        raise CliError(f"Discord answered HTTP {exc.status}; try again later.", EXIT_UNREACHABLE) from None


def need_token(settings: Settings) -> str:
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        raise CliError(f"FLUXCORD_DISCORD_TOKEN (or DISCORD_TOKEN) is not set; {TOKEN_HELP} into .env.", EXIT_CONFIG)
    return token


async def run(settings: Settings) -> int:
    """The bot, until SIGTERM or Ctrl-C."""
    from bot.app import run_bot

    need_token(settings)
    problems = settings.missing(need_discord=True)
    if problems:
        more = f" ({len(problems) - 1} more: `python -m bot check` lists them)" if len(problems) > 1 else ""
        raise CliError(problems[0].rstrip(".") + more + ".", EXIT_CONFIG)
    await talking_to_discord(run_bot(settings))
    return EXIT_OK


async def sync(settings: Settings) -> int:
    """Register the slash commands now, without opening the gateway or running jobs."""
    from bot.app import open_bot

    token = need_token(settings)
    async with open_bot(settings) as bot:
        bot.start_engine = bot.sync_on_start = False
        await talking_to_discord(bot.login(token))  # runs setup_hook: loads the commands
        await talking_to_discord(bot.sync_commands(force=True))
    print("Commands synced.")
    return EXIT_OK


async def credits(settings: Settings, args: argparse.Namespace) -> int:
    """The operator's view of the same ledger the bot uses."""
    from bot.app import open_services
    from bot.jobs.notifier import NullNotifier

    async with open_services(settings, notifier=NullNotifier()) as services:
        admin = services.admin
        if args.action == "grant":
            before = await admin.balance(args.guild, args.user)
            balance = await admin.grant(
                args.guild,
                args.user,
                args.amount,
                actor_id=None,
                reason=args.reason or "operator (CLI)",
                key=f"cli:{uuid.uuid4()}",
            )
            if args.amount > 0:
                print(f"Granted {args.amount} credits.")
            else:
                # A revoke takes back at most what was granted; say what the ledger actually moved.
                taken = before.granted - balance.granted
                short = f" (asked for {-args.amount}; only {taken} were granted)" if taken < -args.amount else ""
                print(f"Took back {taken} credits{short}.")
        else:
            balance = await admin.balance(args.guild, args.user)
        print(
            f"spendable {balance.spendable} (allowance {balance.allowance} + granted {balance.granted}), "
            f"held {balance.held}"
        )
        if args.action == "show":
            for entry in await admin.ledger_entries(args.guild, args.user, limit=10):
                print(f"  {entry.created_at[:19]} {entry.kind:8} {entry.amount:6}  {entry.reason or ''}")
    return EXIT_OK


async def backup(settings: Settings, args: argparse.Namespace) -> int:
    """A consistent copy of the database, made while the bot may be writing to it."""
    result = await backup_database_async(settings.database, args.file, overwrite=args.force)
    print(
        f"Backed up {settings.database} to {result.path} ({result.size} bytes, schema version {result.schema_version})."
    )
    return EXIT_OK


__all__ = ["backup", "credits", "run", "sync", "talking_to_discord"]
