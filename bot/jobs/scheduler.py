"""Fair order for queued jobs: members of a server take turns, and servers take turns.

One member's backlog never holds back another member's first job, and one busy server never holds
back a quiet one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator

from bot.core.jobs import Job

MemberKey = tuple[int, int]


class FairQueue:
    """Queued jobs by server, then member; `pop` serves the next server's next member, oldest job first."""

    def __init__(self) -> None:
        self._servers: OrderedDict[int, OrderedDict[int, deque[Job]]] = OrderedDict()
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def push(self, job: Job) -> None:
        if job.id in self._ids:
            return
        self._ids.add(job.id)
        members = self._servers.setdefault(job.guild_id, OrderedDict())
        members.setdefault(job.user_id, deque()).append(job)

    def _take(self, job: Job) -> None:
        members = self._servers[job.guild_id]
        jobs = members[job.user_id]
        jobs.remove(job)
        self._ids.discard(job.id)
        del members[job.user_id]
        if jobs:
            members[job.user_id] = jobs  # back of the server's line
        del self._servers[job.guild_id]
        if members:
            self._servers[job.guild_id] = members  # back of the line of servers

    def remove(self, job_id: str) -> bool:
        if job_id not in self._ids:
            return False
        for members in self._servers.values():
            for jobs in members.values():
                for job in jobs:
                    if job.id == job_id:
                        jobs.remove(job)
                        self._ids.discard(job_id)
                        self._prune()
                        return True
        return False

    def _prune(self) -> None:
        for guild_id, members in list(self._servers.items()):
            for user_id, jobs in list(members.items()):
                if not jobs:
                    del members[user_id]
            if not members:
                del self._servers[guild_id]

    def pop(self, eligible: Callable[[Job], bool] = lambda job: True) -> Job | None:
        """The next eligible job in fair order; its member and server then go to the back of their lines."""
        for job in self.order():
            if eligible(job):
                self._take(job)
                return job
        return None

    def order(self) -> Iterator[Job]:
        """Jobs in the order `pop` would serve them (assuming all eligible)."""
        servers = [[deque(jobs) for jobs in members.values()] for members in self._servers.values()]
        while servers:
            for members in list(servers):
                queue = members.pop(0)
                yield queue.popleft()
                if queue:
                    members.append(queue)
                if not members:
                    servers.remove(members)

    def position(self, job_id: str) -> int | None:
        """1-based place in line, or None if the job is not queued."""
        for place, job in enumerate(self.order(), start=1):
            if job.id == job_id:
                return place
        return None
