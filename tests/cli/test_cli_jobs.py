"""Jobs one after another through `python -m bot vary` with the default settings, on a Segmind stand-in whose
response URL answers 404 while a job is pending (the benchmark's CLI scenario, shrunk): what holds without
timing it — every job succeeds, and a job costs a submit, a few status polls and one result fetch."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.providers import RPM, EmulatorState, cli_jobs, emulator_config
from emulators.segmind import SegmindEmulator

SCALE = 0.1


async def test_jobs_through_the_cli_all_succeed_and_spend_few_requests(tmp_path: Path) -> None:
    async with SegmindEmulator(emulator_config(SCALE, RPM), pending_response="404") as emulator:

        async def state() -> EmulatorState:
            return EmulatorState(
                [(r.route, r.path, r.status, r.at) for r in emulator.requests],
                {job_id: (job.submitted_at, job.completes_at) for job_id, job in emulator.jobs.items()},
            )

        cli = await cli_jobs(emulator.base_url, state, 3, SCALE, tmp_path)
        assert cli.exit_codes == [0, 0, 0]
        assert len(emulator.jobs) == 3 and emulator.counts["submit"] == 3
        # Each read its result once, after COMPLETED; the 404s of the response URL never expired a job.
        assert emulator.counts["result"] == 3
        assert len(cli.run.requests_per_job) == 3 and statistics.median(cli.run.requests_per_job) <= 6
        assert len(list((tmp_path / "out").iterdir())) == 3
