"""The one authorization check, and AdminService refusing out-of-range values that bypass Discord's client."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.core.errors import JobNotFoundError, NotAllowedError, UserError
from bot.core.jobs import Job, JobState, SystemClock
from bot.core.limits import Limits, OperatorPolicy
from bot.core.requests import ImagineOptions
from bot.jobs.access import Action, authorize, authorize_job
from bot.jobs.admin import AdminService
from bot.jobs.service import Requester
from storage.db import Database
from storage.guilds import GuildRepo
from storage.ledger import LedgerRepo

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
OWNER = Requester(guild_id=1, user_id=10, channel_id=5, request_id="r1")
STRANGER = replace(OWNER, user_id=11)
MODERATOR = replace(STRANGER, moderator=True)
MANAGER = replace(STRANGER, manager=True)
ELSEWHERE = replace(OWNER, guild_id=2, moderator=True, manager=True)


def job(message_id: int | None = 77) -> Job:
    spec = ImagineOptions.parse(prompt="a fox").resolve(seed=1)
    return Job(
        id="abcd1234",
        request_id="r0",
        guild_id=1,
        user_id=10,
        channel_id=5,
        message_id=message_id,
        state=JobState.SUCCEEDED,
        spec=spec,
        cost=2,
        created_at=NOW,
        origin="command",
        parent_job_id=None,
        parent_index=None,
        input_sha256=None,
        provider="segmind",
        provider_job_id="p1",
        attempts=1,
        charged=2,
        delivered=True,
        error=None,
        submitted_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        inference_ms=900,
    )


def test_another_servers_job_reads_like_no_job_at_all() -> None:
    for action in (Action.INFO, Action.REROLL, Action.VARY, Action.CANCEL, Action.DELETE):
        with pytest.raises(NotAllowedError) as refused:
            authorize_job(ELSEWHERE, action, job(), "abcd1234", message_id=77)
        with pytest.raises(JobNotFoundError) as missing:
            authorize_job(ELSEWHERE, action, None, "abcd1234", message_id=77)
        assert refused.value.message == missing.value.message == "There is no job `abcd1234` on this server."


def test_who_may_do_what_to_a_job() -> None:
    for who in (OWNER, STRANGER):
        for action in (Action.INFO, Action.REROLL, Action.VARY):
            assert authorize_job(who, action, job(), "abcd1234").id == "abcd1234"
    assert authorize_job(OWNER, Action.CANCEL, job(), "abcd1234")
    with pytest.raises(NotAllowedError, match="Only the member who asked for job `abcd1234` can cancel it"):
        authorize_job(MODERATOR, Action.CANCEL, job(), "abcd1234")
    for who in (OWNER, MODERATOR):
        assert authorize_job(who, Action.DELETE, job(), "abcd1234", message_id=77)
    with pytest.raises(NotAllowedError, match="Only the member who asked"):
        authorize_job(STRANGER, Action.DELETE, job(), "abcd1234", message_id=77)


def test_the_status_cancel_is_for_the_owner_or_a_moderator_and_refunds_for_moderators_only() -> None:
    for who in (OWNER, MODERATOR):
        assert authorize_job(who, Action.STOP, job(), "abcd1234")
    with pytest.raises(NotAllowedError, match="Only the member who asked for job `abcd1234`, or a moderator"):
        authorize_job(STRANGER, Action.STOP, job(), "abcd1234")
    assert authorize_job(MODERATOR, Action.REFUND, job(), "abcd1234")
    for who in (OWNER, STRANGER, MANAGER):
        with pytest.raises(NotAllowedError, match="Only a moderator"):
            authorize_job(who, Action.REFUND, job(), "abcd1234")
    for action in (Action.STOP, Action.REFUND):  # another server's moderator reads it as no job at all
        with pytest.raises(NotAllowedError, match="There is no job `abcd1234` on this server"):
            authorize_job(ELSEWHERE, action, job(), "abcd1234")


def test_a_delete_must_be_of_the_message_that_shows_the_job() -> None:
    for message_id in (78, None):
        with pytest.raises(NotAllowedError, match="does not belong to this message"):
            authorize_job(OWNER, Action.DELETE, job(), "abcd1234", message_id=message_id)
    with pytest.raises(NotAllowedError, match="does not belong"):
        authorize_job(MODERATOR, Action.DELETE, job(message_id=None), "abcd1234", message_id=77)


def test_server_wide_actions_need_manage_server() -> None:
    for action in (Action.VIEW_CREDITS, Action.ADMINISTER):
        authorize(MANAGER, action)
        with pytest.raises(NotAllowedError):
            authorize(MODERATOR, action)
    with pytest.raises(ValueError, match="done to a job"):
        authorize(MANAGER, Action.DELETE)


@pytest.fixture
def admin(db: Database) -> AdminService:
    policy = OperatorPolicy(daily_allowance=20, max_daily_allowance=100, defaults=Limits(), maxima=Limits(30, 4, 20, 8))
    return AdminService(
        ledger=LedgerRepo(db), guilds=GuildRepo(db), operator=policy, clock=SystemClock(), providers=("segmind",)
    )


async def test_admin_service_refuses_values_a_modified_client_sends(admin: AdminService) -> None:
    before = await admin.overview(1)
    attempts = [
        admin.give(1, 10, -5, actor_id=9, reason=None, key="g1"),
        admin.give(1, 10, 0, actor_id=9, reason=None, key="g2"),
        admin.take_back(1, 10, -5, actor_id=9, reason=None, key="r1"),
        admin.give(1, 10, 5, actor_id=9, reason="r" * 201, key="g3"),
        admin.configure(1, allowance=-1),
        admin.configure(1, allowance=101),
        admin.configure(1, budget=-1),
        admin.configure(1, jobs_per_minute=0),
        admin.configure(1, max_active=0),
        admin.configure(1, max_queued=-1),
        admin.configure(1, jobs_per_minute="many"),
        admin.role_bonus(1, 555, -1),
        admin.usage(1, 0),
        admin.usage(1, 100_000),
    ]
    for attempt in attempts:
        with pytest.raises(UserError):
            await attempt
    assert await admin.overview(1) == before
    assert await admin.ledger_entries(1, 10) == []
    taken, balance = await admin.take_back(1, 10, 5, actor_id=9, reason="oops", key="r2")
    assert (taken, balance.granted) == (0, 0)  # nothing granted, nothing to take, nothing created
