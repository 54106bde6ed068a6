"""AttachmentFetcher against a real aiohttp server: allowed origins only, no redirects, never past the cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.core.errors import InvalidRequestError
from bot.jobs.downloads import DISCORD_CDN_ORIGINS, AttachmentFetcher, origin

BODY = b"\x89PNG" + bytes(2000)


class Cdn:
    def __init__(self) -> None:
        self.root = ""
        self.endless_stopped = asyncio.Event()

    async def plain(self, request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="image/png")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while True:
                await response.write(bytes(16 * 1024))
        except (ConnectionError, RuntimeError):
            self.endless_stopped.set()
        return response

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("http://192.0.2.1/elsewhere.png")

    async def gone(self, request: web.Request) -> web.Response:
        return web.Response(status=404)


@pytest.fixture
async def cdn() -> AsyncIterator[Cdn]:
    server = Cdn()
    app = web.Application()
    for name in ("plain", "endless", "redirect", "gone"):
        app.router.add_get(f"/{name}.png", getattr(server, name))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.root = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def fetcher(cdn: Cdn) -> AsyncIterator[AttachmentFetcher]:
    async with aiohttp.ClientSession() as http:
        yield AttachmentFetcher(http, origins=[cdn.root], timeout=5)


def test_origins_compare_scheme_host_and_port() -> None:
    assert origin("https://CDN.discordapp.com/attachments/1/2/a.png?ex=1") == ("https", "cdn.discordapp.com", 443)
    assert origin("https://cdn.discordapp.com:443/x") == origin(DISCORD_CDN_ORIGINS[0])
    assert origin("http://cdn.discordapp.com/x") != origin(DISCORD_CDN_ORIGINS[0])
    assert origin("https://cdn.discordapp.com.evil.example/x") != origin(DISCORD_CDN_ORIGINS[0])
    assert origin("file:///etc/passwd") is None
    assert origin("https://[::1:bad/x") is None


async def test_fetches_from_an_allowed_origin(cdn: Cdn, fetcher: AttachmentFetcher) -> None:
    assert await fetcher.fetch(f"{cdn.root}/plain.png", limit=len(BODY)) == BODY


async def test_refuses_other_hosts_without_a_request(fetcher: AttachmentFetcher) -> None:
    with pytest.raises(InvalidRequestError, match="not stored on Discord"):
        await fetcher.fetch("http://127.0.0.2:9/plain.png", limit=10_000)


async def test_refuses_a_declared_length_over_the_limit(cdn: Cdn, fetcher: AttachmentFetcher) -> None:
    with pytest.raises(InvalidRequestError, match="larger than"):
        await fetcher.fetch(f"{cdn.root}/plain.png", limit=len(BODY) - 1)


async def test_stops_reading_an_endless_body_at_the_limit(cdn: Cdn, fetcher: AttachmentFetcher) -> None:
    with pytest.raises(InvalidRequestError, match="larger than"):
        await fetcher.fetch(f"{cdn.root}/endless.png", limit=100_000)
    await asyncio.wait_for(cdn.endless_stopped.wait(), 5)  # the connection was closed, not left hanging


@pytest.mark.parametrize("name", ["redirect", "gone"])
async def test_redirects_and_errors_are_not_followed(cdn: Cdn, fetcher: AttachmentFetcher, name: str) -> None:
    with pytest.raises(InvalidRequestError, match="could not be downloaded"):
        await fetcher.fetch(f"{cdn.root}/{name}.png", limit=10_000)
