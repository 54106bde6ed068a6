"""`python -m bot check`: every setting's form and the database, and with `--online` each token and key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp
import discord

from bot.app import build_provider, point_discord_at
from bot.cli.errors import EXIT_FAILED, EXIT_OK
from bot.providers.keys import KeyCheck, KeyChecker, connection_failure, origin
from bot.settings import Settings
from storage.db import database_problem

LABELS = {"segmind": "Segmind", "replicate": "Replicate", "eachlabs": "Eachlabs", "onemin": "1min.ai"}
TOKEN_HELP = "copy it again from the developer portal (Bot → Reset Token)"


def label(provider: str) -> str:
    return LABELS.get(provider, provider)


def key_setting(provider: str) -> str:
    return f"FLUXCORD_{provider.upper()}_API_KEY"


def url_setting(provider: str) -> str:
    return f"FLUXCORD_{provider.upper()}_BASE_URL"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: what was looked at, whether it is fine, and what to do if not."""

    subject: str
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'PROBLEM'}  {self.subject}: {self.text}"


def provider_sentence(check: KeyCheck) -> str:
    """A key check as one sentence for the operator, naming the setting to fix."""
    name = check.provider
    if check.ok:
        return f"{check.detail}."
    if not check.reachable:
        return f"{check.detail}; check {url_setting(name)} and the network."
    if "refused" in check.detail:
        return f"{check.detail}; check {key_setting(name)}."
    return f"{check.detail}."


def offline_findings(settings: Settings) -> list[Finding]:
    """Everything that can be checked without the network; the settings' forms were checked when they loaded."""
    findings = []
    problem = database_problem(settings.database)
    state = "exists" if settings.database.exists() else "created on first start"
    findings.append(Finding("database", problem is None, problem or f"{settings.database} ({state})"))
    missing = settings.missing(need_discord=True)
    for sentence in missing:
        findings.append(Finding("missing", False, sentence))
    for name in settings.providers:
        if settings.provider_key(name):
            url = getattr(settings, f"{name}_base_url", "")
            findings.append(Finding(name, True, f"key set, {url}"))
    if settings.allowed_guilds:
        ids = ", ".join(str(guild) for guild in settings.allowed_guilds)
        findings.append(Finding("servers", True, f"serves only {ids} (FLUXCORD_ALLOWED_GUILDS)"))
    else:
        findings.append(
            Finding("servers", True, "every server it is added to; switch off Public Bot in the developer portal")
        )
    findings.append(Finding("daily cap", True, f"{settings.daily_credit_cap} credits a day across all servers"))
    return findings


async def check_discord(settings: Settings) -> Finding:
    """Log in with the token (no gateway): who the bot is, or why that failed."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        return Finding("discord", False, "no token to try (FLUXCORD_DISCORD_TOKEN)")
    point_discord_at(settings)
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    client = discord.Client(intents=discord.Intents.default())
    try:
        async with client:
            await client.login(token)
            application = await client.application_info()
    except discord.LoginFailure:
        return Finding("discord", False, f"Discord refused the token; {TOKEN_HELP} into FLUXCORD_DISCORD_TOKEN.")
    except (aiohttp.ClientError, OSError) as exc:
        return Finding("discord", False, discord_unreachable(exc))
    except discord.HTTPException as exc:
        return Finding("discord", False, f"Discord answered HTTP {exc.status}; try again later.")
    user = client.user
    text = f"the token works: {user} (id {user.id if user else '?'})."
    if application.bot_public:
        return Finding(
            "discord",
            False,
            f"{text[:-1]}, but Public Bot is on, so anyone can add it and spend your credits; "
            "switch it off in the developer portal (Bot → Public Bot).",
        )
    return Finding("discord", True, text)


def discord_unreachable(exc: BaseException) -> str:
    """One sentence for a Discord request that got no answer, naming where it went."""
    base = discord.http.Route.BASE
    return (
        f"Could not reach Discord at {origin(base)} ({connection_failure(exc)}); "
        "check the network, or FLUXCORD_DISCORD_API_BASE if you set it."
    )


async def check_keys(settings: Settings, names: Sequence[str] | None = None) -> list[KeyCheck]:
    """One cheap authenticated call per configured provider key, all at once."""
    wanted = [n for n in (names or settings.providers) if settings.provider_key(n)]
    timeout = min(settings.request_timeout, 15.0)
    async with aiohttp.ClientSession() as http:
        quick = settings.model_copy(update={"request_timeout": timeout})
        providers = [build_provider(name, quick, http, key) for name in wanted if (key := settings.provider_key(name))]
        checkers = [provider for provider in providers if isinstance(provider, KeyChecker)]
        return list(await asyncio.gather(*(checker.check_key() for checker in checkers)))


async def run_check(settings: Settings, *, online: bool, stream: TextIO) -> int:
    """Print one line per finding; 0 when nothing needs fixing, 1 otherwise."""
    dotenv = await asyncio.to_thread(Path(".env").is_file)
    source = ".env and the environment" if dotenv else "the environment (no .env here)"
    print(f"Fluxcord configuration from {source}:", file=stream)
    findings = await asyncio.to_thread(offline_findings, settings)
    if online:
        discord_finding, keys = await asyncio.gather(check_discord(settings), check_keys(settings))
        findings.append(discord_finding)
        findings.extend(Finding(check.provider, check.ok, provider_sentence(check)) for check in keys)
    for finding in findings:
        print(finding.line(), file=stream)
    problems = sum(1 for finding in findings if not finding.ok)
    if problems:
        print(f"{problems} problem{'s' if problems > 1 else ''} to fix.", file=stream)
        return EXIT_FAILED
    done = "Everything works." if online else "The configuration is complete; `check --online` tries the keys."
    print(done, file=stream)
    return EXIT_OK


CONNECT_SECONDS = 5.0


async def first_unreachable(urls: dict[str, str]) -> tuple[str, str, str] | None:
    """(provider, origin, reason) when none of the providers' hosts accepts a connection; None if one does.

    A TCP connection only: no API request is sent, so nothing is counted against a rate limit.
    """
    failures = []
    for name, url in urls.items():
        reason = await _connect(url)
        if reason is None:
            return None
        failures.append((name, origin(url), reason))
    return failures[0] if failures else None


async def _connect(url: str) -> str | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return connection_failure(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None
