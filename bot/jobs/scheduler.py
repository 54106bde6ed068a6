"""Fair order for queued jobs: round-robin across members, so one member's backlog never blocks another."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator

from bot.core.jobs import Job

MemberKey = tuple[int, int]


class FairQueue:
    """Queued jobs grouped by (server, member); `pop` serves members in turn, oldest job first."""

    def __init__(self) -> None:
        self._members: OrderedDict[MemberKey, deque[Job]] = OrderedDict()
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def push(self, job: Job) -> None:
        if job.id in self._ids:
            return
        self._ids.add(job.id)
        self._members.setdefault((job.guild_id, job.user_id), deque()).append(job)

    def remove(self, job_id: str) -> bool:
        if job_id not in self._ids:
            return False
        self._ids.discard(job_id)
        for key, jobs in list(self._members.items()):
            for job in jobs:
                if job.id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._members[key]
                    return True
        return False

    def pop(self, eligible: Callable[[Job], bool] = lambda job: True) -> Job | None:
        """The next member's oldest eligible job; that member then goes to the back of the line."""
        for key in list(self._members):
            jobs = self._members[key]
            for job in jobs:
                if eligible(job):
                    jobs.remove(job)
                    self._ids.discard(job.id)
                    del self._members[key]
                    if jobs:
                        self._members[key] = jobs  # re-inserted at the end: the next member goes first
                    return job
        return None

    def order(self) -> Iterator[Job]:
        """Jobs in the order `pop` would serve them (assuming all eligible)."""
        queues = [deque(jobs) for jobs in self._members.values()]
        while queues:
            for q in list(queues):
                yield q.popleft()
                if not q:
                    queues.remove(q)

    def position(self, job_id: str) -> int | None:
        """1-based place in line, or None if the job is not queued."""
        for place, job in enumerate(self.order(), start=1):
            if job.id == job_id:
                return place
        return None
