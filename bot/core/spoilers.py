"""A server's spoiler policy: the channels and roles whose results are posted as spoilers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

#: the most channels and roles one server may list
MAX_TARGETS: Final = 50


@dataclass(frozen=True, slots=True)
class SpoilerPolicy:
    """Results made in one of `channels`, or asked for by a member with one of `roles`, are spoilers."""

    channels: frozenset[int] = field(default_factory=frozenset)
    roles: frozenset[int] = field(default_factory=frozenset)

    def applies(self, channel_id: int | None, role_ids: Iterable[int] = ()) -> bool:
        return (channel_id is not None and channel_id in self.channels) or not self.roles.isdisjoint(role_ids)

    def __bool__(self) -> bool:
        return bool(self.channels or self.roles)

    def __len__(self) -> int:
        return len(self.channels) + len(self.roles)
