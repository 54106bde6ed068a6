"""Where a provider's answer reports the account's balance, the adapter reads it out; where not, nothing is made up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from bot.core.images import normalize_input
from bot.core.requests import ImagineOptions, VaryOptions
from bot.providers.onemin import OneMinProvider, team_balance
from bot.providers.segmind import SegmindProvider, remaining_credits
from emulators.common import EmulatorConfig
from emulators.onemin import OneMinEmulator
from emulators.segmind import SegmindEmulator
from tests.conftest import make_png

FAST = EmulatorConfig(latency_median=0.1, latency_sigma=0.0, queue_seconds=0.0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_segmind_reports_what_is_left_after_each_job(session: aiohttp.ClientSession) -> None:
    async with SegmindEmulator(replace(FAST, credits=1.0)) as emulator:
        provider = SegmindProvider(session, api_key="k", base_url=emulator.base_url)
        spec = VaryOptions.parse(count=2).resolve((300, 200))
        submission = await provider.submit(spec, normalize_input(make_png(300, 200)).data)
        while (await provider.status(submission.job_id)).state.value != "succeeded":
            pass
        result = await provider.result(submission.job_id, spec)
    assert result.remaining_balance == pytest.approx(1.0 - 2 * 0.004)


async def test_onemin_reports_the_teams_credits_left(session: aiohttp.ClientSession) -> None:
    async with OneMinEmulator(replace(FAST, credits=10_000)) as emulator:
        provider = OneMinProvider(
            session, api_key="k", base_url=emulator.base_url, asset_base_url=emulator.asset_base_url
        )
        submission = await provider.submit(ImagineOptions.parse(prompt="a fox").resolve(), None)
    assert submission.result is not None
    assert submission.result.remaining_balance == 10_000 - 100


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metrics": {}},
        {"metrics": "none"},
        {"metrics": {"remaining_credits": "lots"}},
    ],
)
def test_no_balance_is_invented_from_an_answer_without_one(body: dict[str, object]) -> None:
    assert remaining_credits(body) is None
    assert team_balance({"aiRecord": body}) is None


def test_onemin_balance_shapes() -> None:
    assert team_balance({"aiRecord": {"teamUser": {"creditLimit": "500", "usedCredit": 120}}}) == 380
    assert team_balance({"teamUser": {"creditLimit": 500}}) == 500
