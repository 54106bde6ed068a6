"""Poll timing follows the request budget's real headroom: fast while it has room, thrifty as it fills."""

from __future__ import annotations

import itertools
import random

from bot.core.requests import ImagineOptions
from bot.jobs.gate import Headroom, ProviderGate
from bot.jobs.timing import Expectation, PollPlanner

PLANNER = PollPlanner(0.25, 30.0)
# Learned from a lognormal with median 7.6 s: 45th, 80th and 95th percentiles.
LEARNED = Expectation(median=7.6, soon=7.3, mostly=9.3, late=11.4, learned=True)


def schedule(headroom: Headroom | None, *, until: float, expect: Expectation = LEARNED) -> list[float]:
    """The moments the planner polls a job that is still running at `until`."""
    moments: list[float] = []
    elapsed = 0.0
    while True:
        elapsed += PLANNER.next_delay(elapsed=elapsed, expect=expect, polls=len(moments), headroom=headroom)
        if elapsed > until:
            return moments
        moments.append(elapsed)


def test_no_budget_polls_fast_from_the_45th_percentile() -> None:
    moments = schedule(None, until=8.1)
    assert moments[0] == 7.3 and [round(b - a, 2) for a, b in itertools.pairwise(moments)] == [0.25] * 3


def test_one_job_alone_under_the_default_budget_polls_fast() -> None:
    # 50 requests a minute, two used, one job running: the budget has room, so no waiting to the 80th percentile.
    calm = Headroom(spare=48, limit=50, rate=50 / 60, jobs=1)
    assert calm.pressure == 0.0
    assert schedule(calm, until=8.0) == schedule(None, until=8.0)


def test_a_full_budget_with_a_backlog_waits_for_the_95th_percentile_and_shares_the_rate() -> None:
    full = Headroom(spare=0, limit=50, rate=50 / 60, jobs=10, waiting=30)
    assert full.pressure == 1.0
    moments = schedule(full, until=40.0)
    assert moments[0] == 11.4  # most jobs are done by the first poll: one status request each
    assert moments[1] - moments[0] >= 10 / (50 / 60) - 1e-9  # each of 10 jobs takes a tenth of the rate


def test_a_full_budget_without_a_backlog_only_spaces_the_polls() -> None:
    busy = Headroom(spare=2, limit=50, rate=50 / 60, jobs=1)
    assert busy.pressure == 1.0
    moments = schedule(busy, until=12.0)
    assert moments[0] == 7.3  # early finishers are not made to wait for the 95th percentile
    assert moments[1] - moments[0] >= 1 / (50 / 60) - 1e-9


def test_the_schedule_turns_thrifty_gradually() -> None:
    firsts = [
        schedule(Headroom(spare=spare, limit=50, rate=50 / 60, jobs=4, waiting=1), until=30.0)[0]
        for spare in (45, 25, 15, 8, 0)
    ]
    assert firsts == sorted(firsts) and firsts[0] == 7.3 and firsts[-1] == 11.4


def test_a_long_job_is_not_polled_every_few_seconds_for_a_minute() -> None:
    calm = Headroom(spare=48, limit=50, rate=50 / 60, jobs=1)
    late = [moment for moment in schedule(calm, until=60.0) if moment > LEARNED.late]
    assert len(late) <= 10  # every 3 s would be 16
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert gaps == sorted(gaps)  # spaced out with the job's age


def test_an_unlearned_model_assumes_a_typical_spread_around_the_published_median() -> None:
    spec = ImagineOptions.parse(prompt="x").resolve()
    unlearned = PLANNER.expectation(spec, [])
    assert not unlearned.learned and unlearned.median == 10.1  # FLUX.1 schnell's published average
    assert unlearned.soon < unlearned.median < unlearned.mostly < unlearned.late
    assert schedule(None, until=unlearned.median, expect=unlearned)[0] == unlearned.soon


def test_the_gate_reports_its_headroom() -> None:
    now = [0.0]
    gate = ProviderGate(concurrency=4, rpm=50, clock=lambda: now[0])
    assert ProviderGate(concurrency=4, rpm=None).headroom() is None
    gate.take_slot()
    headroom = gate.headroom()
    assert headroom is not None and (headroom.spare, headroom.limit, headroom.jobs) == (50, 50, 1)
    gate._sent.extend(sorted(random.Random(1).uniform(0, 30) for _ in range(48)))
    headroom = gate.headroom()
    assert headroom is not None and headroom.spare == 2 and headroom.pressure == 1.0
    now[0] = 100.0  # a while later the window has emptied
    headroom = gate.headroom()
    assert headroom is not None and headroom.spare == 50 and headroom.pressure == 0.0


def test_a_backlog_makes_polls_thrifty_before_the_window_fills() -> None:
    # The first ten of 200 queued jobs: the window is nearly empty, but the queue will need it all.
    assert Headroom(spare=40, limit=50, rate=50 / 60, jobs=10, waiting=190).pressure == 1.0
    assert Headroom(spare=40, limit=50, rate=50 / 60, jobs=10, waiting=0).pressure == 0.0
