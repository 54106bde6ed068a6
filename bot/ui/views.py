"""The buttons under a result, as plain components: `fx:<action>:<job_id>[:<n>]` carries everything.

Rendering only: the cogs own what a click does (their persistent DynamicItems match the templates here).

A result's rows, the way members read them (Discord allows five rows of five):

1. V1 … V4 — vary that image (FLUX.1 Redux schnell, same options)
2. Vary (Subtle) · Vary (Strong) · HD — how far to move, and the 1 MP re-render of a 0.25 MP result
3. ⬛ 1:1 · ▭ 16:9 · ▯ 9:16 — reframe an image at another shape (the result's own shape is left out)
4. 🔁 Re-roll · 🖌️ Remix · ⭐ · ℹ️ · 🗑️ — the whole job: again, edit the prompt, showcase, details, delete

Subtle, Strong and the reframe buttons act on one image: on a one-image result they name it; on a larger one
the click asks which image first, with buttons that name it.

Elsewhere: ✖️ Cancel on a status message while its job is queued or running (the account cog), and 🗑️ Delete and
refund on a mod-log entry (the moderation cog).
"""

from __future__ import annotations

from typing import Final

import discord

from bot.core.jobs import Job, StoredOutput
from bot.core.variants import REFRAME_RATIOS

_JOB: Final = r"(?P<job>[a-z0-9]{4,20})"
_IMAGE: Final = r"(?::(?P<n>[1-4]))?"
#: 🔁 V1…V4 ℹ️ 🗑️ (the generate cog)
TEMPLATE: Final = rf"fx:(?P<action>reroll|vary|info|delete):{_JOB}{_IMAGE}"
#: reframe actions by the shape they ask for
REFRAME_ACTIONS: Final = {f"frame-{ratio.replace(':', 'x')}": ratio for ratio in REFRAME_RATIOS}
#: HD, Vary (Subtle/Strong), reframe and Remix (the variations cog)
VARIANT_TEMPLATE: Final = rf"fx:(?P<action>hd|subtle|strong|remix|{'|'.join(REFRAME_ACTIONS)}):{_JOB}{_IMAGE}"
#: ⭐ (the gallery cog)
STAR_TEMPLATE: Final = rf"fx:star:{_JOB}"
#: `/history` pages (the gallery cog)
HISTORY_TEMPLATE: Final = r"fx:history:(?P<page>[0-9]{1,5})"
#: Cancel on a status message (the account cog)
CANCEL_TEMPLATE: Final = rf"fx:cancel:{_JOB}"
#: Delete and refund on a mod-log entry (the moderation cog)
REFUND_TEMPLATE: Final = rf"fx:refund:{_JOB}"

TEXT: Final = {
    "vary": "V{n}",
    "image": "Image {n}",
    "newer": "Newer",
    "older": "Older",
    "cancel": "Cancel",
    "refund": "Delete and refund",
}
#: every label a result's buttons show, in one place: (label, emoji, style)
_LOOKS: Final[dict[str, tuple[str | None, str | None, discord.ButtonStyle]]] = {
    "reroll": ("Re-roll", "🔁", discord.ButtonStyle.primary),
    "info": (None, "ℹ️", discord.ButtonStyle.secondary),
    "delete": (None, "🗑️", discord.ButtonStyle.danger),
    "subtle": ("Vary (Subtle)", None, discord.ButtonStyle.secondary),
    "strong": ("Vary (Strong)", None, discord.ButtonStyle.secondary),
    "hd": ("HD (re-render at 1 MP)", None, discord.ButtonStyle.success),
    "remix": ("Remix", "🖌️", discord.ButtonStyle.primary),
    "star": (None, "⭐", discord.ButtonStyle.secondary),
    "frame-1x1": ("1:1", "⬛", discord.ButtonStyle.secondary),
    "frame-16x9": ("16:9", "▭", discord.ButtonStyle.secondary),
    "frame-9x16": ("9:16", "▯", discord.ButtonStyle.secondary),
    "cancel": (TEXT["cancel"], "✖️", discord.ButtonStyle.secondary),
    "refund": (TEXT["refund"], "🗑️", discord.ButtonStyle.danger),
}
_ROWS: Final = {"vary": 0, "subtle": 1, "strong": 1, "hd": 1, "reroll": 3, "remix": 3, "star": 3, "info": 3}


def custom_id(action: str, job_id: str, n: int | None = None) -> str:
    return f"fx:{action}:{job_id}" + (f":{n}" if n is not None else "")


def result_button(
    action: str, job_id: str, n: int | None = None, *, row: int | None = None
) -> discord.ui.Button[discord.ui.View]:
    default = (TEXT["vary"].format(n=n), None, discord.ButtonStyle.secondary)
    label, emoji, style = _LOOKS.get(action, default)
    where = row if row is not None else _ROWS.get(action, 2 if action in REFRAME_ACTIONS else 3)
    return discord.ui.Button(custom_id=custom_id(action, job_id, n), label=label, emoji=emoji, style=style, row=where)


def result_view(job: Job, outputs: list[StoredOutput], *, showcased: bool = False) -> discord.ui.View:
    """The four rows described above; a showcase post leaves out ⭐."""
    view = discord.ui.View(timeout=None)
    for output in outputs:
        view.add_item(result_button("vary", job.id, output.index + 1))
    # One image: the per-image buttons name it; several: the click asks which (see picker_view).
    only = 1 if len(outputs) == 1 else None
    if outputs:
        view.add_item(result_button("subtle", job.id, only))
        view.add_item(result_button("strong", job.id, only))
    if job.spec.megapixels == "0.25":
        view.add_item(result_button("hd", job.id))
    if outputs:
        for action, ratio in REFRAME_ACTIONS.items():
            if ratio != job.spec.aspect_ratio:
                view.add_item(result_button(action, job.id, only))
    view.add_item(result_button("reroll", job.id))
    if job.spec.prompt is not None:
        view.add_item(result_button("remix", job.id))
    if not showcased:
        view.add_item(result_button("star", job.id))
    view.add_item(result_button("info", job.id))
    view.add_item(result_button("delete", job.id))
    # Stopped, so discord.py does not keep it per message: clicks go to the cogs' DynamicItems, after a restart too.
    view.stop()
    return view


def picker_view(action: str, job_id: str, count: int) -> discord.ui.View:
    """ "Which image?": one button per image, each the persistent button of `action` for that image."""
    view = discord.ui.View(timeout=None)
    for n in range(1, count + 1):
        button = result_button(action, job_id, n, row=0)
        button.label, button.emoji = TEXT["image"].format(n=n), None
        view.add_item(button)
    view.stop()
    return view


def status_view(job: Job) -> discord.ui.View:
    """✖️ Cancel under a status message; it rides on the post that shows the job, and the outcome replaces it."""
    return _single(result_button("cancel", job.id, row=0))


def refund_view(job: Job) -> discord.ui.View:
    """🗑️ Delete and refund under a job's mod-log entry."""
    return _single(result_button("refund", job.id, row=0))


def _single(button: discord.ui.Button[discord.ui.View]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(button)
    view.stop()
    return view


def history_view(page: int, pages: int) -> discord.ui.View | None:
    """◀ Newer · Older ▶ under a `/history` page (None when everything fits on one)."""
    if pages <= 1:
        return None
    view = discord.ui.View(timeout=None)
    for label, target, emoji in ((TEXT["newer"], page - 1, "◀"), (TEXT["older"], page + 1, "▶")):
        view.add_item(
            discord.ui.Button(
                custom_id=f"fx:history:{target}",
                label=label,
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                disabled=not 1 <= target <= pages,
            )
        )
    view.stop()
    return view


__all__ = [
    "CANCEL_TEMPLATE",
    "HISTORY_TEMPLATE",
    "REFRAME_ACTIONS",
    "REFUND_TEMPLATE",
    "STAR_TEMPLATE",
    "TEMPLATE",
    "VARIANT_TEMPLATE",
    "custom_id",
    "history_view",
    "picker_view",
    "refund_view",
    "result_button",
    "result_view",
    "status_view",
]
