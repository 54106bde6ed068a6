"""Who may do what: the one check every button, option and command goes through.

Jobs are seen only from their own server: another server's job is refused with the same sentence as a job
that does not exist, so a refusal reveals nothing about it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from bot.core.errors import JobNotFoundError, NotAllowedError
from bot.core.jobs import Job
from bot.core.text import truncate


class Actor(Protocol):
    """The member asking, where, and what Discord lets them do there."""

    @property
    def guild_id(self) -> int: ...

    @property
    def user_id(self) -> int: ...

    @property
    def moderator(self) -> bool:
        """Manage Messages in the channel."""
        ...

    @property
    def manager(self) -> bool:
        """Manage Server."""
        ...


class Action(StrEnum):
    """What a member asks to do."""

    #: ℹ️, 🔁, V1…V4, Vary (Subtle/Strong), HD, the reframe buttons and Remix: any member of the job's server
    INFO = "info"
    REROLL = "reroll"
    VARY = "vary"
    HD = "hd"
    REFRAME = "reframe"
    REMIX = "remix"
    #: `/show` and ⭐: the member who asked for the job, or a moderator
    SHOW = "show"
    SHOWCASE = "showcase"
    #: `/cancel`: the member who asked for the job
    CANCEL = "cancel"
    #: the status message's Cancel button: the member who asked for the job, or a moderator
    STOP = "stop"
    #: 🗑️: the member who asked for the job, or a moderator
    DELETE = "delete"
    #: the mod-log's delete-and-refund: a moderator
    REFUND = "refund"
    #: `/credits member:` of someone else, and every `/fluxadmin` command: a manager
    VIEW_CREDITS = "view credits"
    ADMINISTER = "administer"


_REFUSALS = {
    Action.CANCEL: "Only the member who asked for job `{job}` can cancel it.",
    Action.STOP: "Only the member who asked for job `{job}`, or a moderator, can cancel it.",
    Action.REFUND: "Only a moderator (Manage Messages) can delete and refund job `{job}`.",
    Action.DELETE: "Only the member who asked for this job, or a moderator, can delete it.",
    Action.SHOW: "Only the member who asked for job `{job}`, or a moderator, can show it again.",
    Action.SHOWCASE: "Only the member who asked for this job, or a moderator, can put it in the showcase.",
    Action.VIEW_CREDITS: "Viewing another member's credits needs the Manage Server permission.",
    Action.ADMINISTER: "You need the Manage Server permission for that; nothing was changed.",
}


def no_such_job(job_id: str) -> str:
    return f"There is no job `{truncate(job_id.strip(), 24)}` on this server."


_ANY_MEMBER = frozenset({Action.INFO, Action.REROLL, Action.VARY, Action.HD, Action.REFRAME, Action.REMIX})
_OWNER_OR_MODERATOR = frozenset({Action.DELETE, Action.SHOW, Action.SHOWCASE, Action.STOP})


def authorize_job(
    who: Actor, action: Action, job: Job | None, job_id: str, *, message_id: int | None = None, reposted: bool = False
) -> Job:
    """`job` if `who` may do `action` to it; NotAllowedError (or JobNotFoundError) with one sentence otherwise.

    A delete names the message it deletes: the job must be the one that message shows (its result, or a
    re-post of it when `reposted`), so the owner checked is the owner of what disappears.
    """
    if job is None:
        raise JobNotFoundError(no_such_job(job_id))
    if job.guild_id != who.guild_id:
        raise NotAllowedError(no_such_job(job_id))
    if action is Action.DELETE and (message_id is None or (job.message_id != message_id and not reposted)):
        raise NotAllowedError("That button does not belong to this message; nothing was deleted.")
    owner = job.user_id == who.user_id
    if (
        (action is Action.CANCEL and not owner)
        or (action in _OWNER_OR_MODERATOR and not (owner or who.moderator))
        or (action is Action.REFUND and not who.moderator)
    ):
        raise NotAllowedError(_REFUSALS[action].format(job=job.id))
    if action not in _ANY_MEMBER | _OWNER_OR_MODERATOR | {Action.CANCEL, Action.REFUND}:
        raise ValueError(f"{action} is not something done to a job")
    return job


def authorize(who: Actor, action: Action) -> None:
    """Refuse server-wide actions (another member's credits, `/fluxadmin`) to members without Manage Server."""
    if action not in (Action.VIEW_CREDITS, Action.ADMINISTER):
        raise ValueError(f"{action} is done to a job; use authorize_job")
    if not who.manager:
        raise NotAllowedError(_REFUSALS[action])
