"""The Discord emulator's rate limits and nonces, as raw HTTP sees them and as the real discord.py client meets them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import discord.http
import pytest

from emulators.discord.emulator import DiscordEmulator
from emulators.discord.ratelimits import Limit, RateLimits

POST = "POST /channels/{channel}/messages"
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After")


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator() as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
async def http(emulator: DiscordEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, emulator: DiscordEmulator, channel_id: int, **body: Any
) -> tuple[int, Any, Any]:
    url = f"{emulator.api_base}/channels/{channel_id}/messages"
    async with http.post(url, json={"content": "hi", **body}) as response:
        return response.status, response.headers, await response.json()


async def test_a_channel_bucket_answers_with_complete_headers_then_429s_as_discord_does(
    emulator: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    answers = [await post(http, emulator, emulator.channel_id) for _ in range(6)]

    assert [status for status, _, _ in answers] == [200] * 5 + [429]
    for remaining, (_, headers, _) in zip(range(4, -1, -1), answers, strict=False):
        assert all(name in headers for name in HEADERS)
        assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == str(remaining)
        assert 0 < float(headers["X-RateLimit-Reset-After"]) <= 5.0
    assert len({headers["X-RateLimit-Bucket"] for _, headers, _ in answers}) == 1
    _, refused, body = answers[-1]
    assert refused["Via"] and refused["Content-Type"] == "application/json"
    assert refused["X-RateLimit-Scope"] == "user" and int(refused["Retry-After"]) >= 1
    assert body["global"] is False and 0 < body["retry_after"] <= 5.0
    assert body["message"] == "You are being rate limited."
    # The bucket is per channel (a major parameter): another channel is untouched.
    status, headers, _ = await post(http, emulator, emulator.nsfw_channel_id)
    assert status == 200 and headers["X-RateLimit-Remaining"] == "4"
    assert len([m for m in emulator.channel_messages() if m.content == "hi"]) == 5


async def test_the_global_limit_spares_interaction_routes(emulator: DiscordEmulator) -> None:
    emulator.rate_limiter.config = RateLimits(routes={}, global_limit=Limit(3, 5.0))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as http:
        statuses = []
        for _ in range(4):
            async with http.get(f"{emulator.api_base}/channels/{emulator.channel_id}") as response:
                statuses.append(response.status)
                last = response.headers, await response.json()
    assert statuses == [200, 200, 200, 429]
    headers, body = last
    assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global" and headers["Via"]
    assert body["global"] is True
    verdict = emulator.rate_limiter.check("POST /interactions/{interaction}/{token}/callback", {}, token_route=True)
    assert verdict is None


async def test_limits_switched_off_send_no_headers_and_refuse_nothing(
    emulator: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.rate_limiter.config.enabled = False
    answers = [await post(http, emulator, emulator.channel_id) for _ in range(8)]
    assert [status for status, _, _ in answers] == [200] * 8
    assert all("X-RateLimit-Remaining" not in headers for _, headers, _ in answers)


async def test_the_real_client_follows_the_headers_and_never_sees_a_429(emulator: DiscordEmulator) -> None:
    emulator.rate_limiter.config.time_scale = 0.1  # 5 per 0.5 s
    base = discord.http.Route.BASE
    discord.http.Route.BASE = emulator.api_base
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(emulator.token)
        channel = client.get_partial_messageable(emulator.channel_id)
        began = time.perf_counter()
        for n in range(12):
            await channel.send(f"message {n}")
        elapsed = time.perf_counter() - began
    finally:
        await client.close()
        discord.http.Route.BASE = base
    assert [r.status for r in emulator.calls(POST)] == [200] * 12
    assert elapsed >= 2 * 0.5 * 0.9  # waited out two windows, as Discord's headers asked
    assert [m.content for m in emulator.channel_messages()] == [f"message {n}" for n in range(12)]


async def test_enforce_nonce_returns_the_earlier_message_within_the_window(
    emulator: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    _, _, first = await post(http, emulator, emulator.channel_id, nonce="fxrjob1", enforce_nonce=True)
    _, _, again = await post(http, emulator, emulator.channel_id, nonce="fxrjob1", enforce_nonce=True, content="x")
    assert again["id"] == first["id"] and again["content"] == "hi"
    # Without enforce_nonce a nonce is only echoed, and a second message is posted.
    _, _, loose = await post(http, emulator, emulator.channel_id, nonce="fxrjob1")
    assert loose["id"] != first["id"]
    # Past the window the nonce is free again.
    emulator.advance(emulator.nonce_window + 1)
    _, _, later = await post(http, emulator, emulator.channel_id, nonce="fxrjob1", enforce_nonce=True)
    assert later["id"] not in (first["id"], loose["id"])
    assert len(emulator.channel_messages()) == 3


async def test_a_nonce_of_a_deleted_message_is_refused_and_long_nonces_are_invalid(
    emulator: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    _, _, first = await post(http, emulator, emulator.channel_id, nonce="fxsjob2", enforce_nonce=True)
    emulator.delete_message(int(first["id"]))
    status, _, body = await post(http, emulator, emulator.channel_id, nonce="fxsjob2", enforce_nonce=True)
    assert status == 404 and body["code"] == 10008
    status, _, body = await post(http, emulator, emulator.channel_id, nonce="n" * 26, enforce_nonce=True)
    assert status == 400 and "nonce" in body["errors"]
    assert emulator.channel_messages() == []


async def test_a_lost_answer_still_posts_and_discord_py_retries_onto_the_same_message(
    emulator: DiscordEmulator,
) -> None:
    emulator.inject_error("POST", r"^/channels/\d+/messages$", 502, after_applying=True)
    base = discord.http.Route.BASE
    discord.http.Route.BASE = emulator.api_base
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(emulator.token)
        sent = await client.get_partial_messageable(emulator.channel_id).send("once", nonce="fxrjob3")
    finally:
        await client.close()
        discord.http.Route.BASE = base
    assert [r.status for r in emulator.calls(POST)] == [502, 200]
    assert [m.id for m in emulator.channel_messages()] == [sent.id]
