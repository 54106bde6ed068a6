"""The buttons under a result, as plain components: `fx:<action>:<job_id>[:<n>]` carries everything.

Rendering only: the generate cog owns what a click does (its persistent DynamicItem matches TEMPLATE).
"""

from __future__ import annotations

from typing import Final

import discord

from bot.core.jobs import Job, StoredOutput

TEMPLATE: Final = r"fx:(?P<action>reroll|vary|info|delete):(?P<job>[a-z0-9]{4,20})(?::(?P<n>[1-4]))?"

_LOOKS: Final[dict[str, tuple[str | None, str | None, discord.ButtonStyle]]] = {
    "reroll": ("Re-roll", "🔁", discord.ButtonStyle.primary),
    "info": (None, "ℹ️", discord.ButtonStyle.secondary),
    "delete": (None, "🗑️", discord.ButtonStyle.danger),
}


def custom_id(action: str, job_id: str, n: int | None = None) -> str:
    return f"fx:{action}:{job_id}" + (f":{n}" if n is not None else "")


def result_button(action: str, job_id: str, n: int | None = None) -> discord.ui.Button[discord.ui.View]:
    label, emoji, style = _LOOKS.get(action, (f"V{n}", None, discord.ButtonStyle.secondary))
    return discord.ui.Button(
        custom_id=custom_id(action, job_id, n), label=label, emoji=emoji, style=style, row=1 if action == "vary" else 0
    )


def result_view(job: Job, outputs: list[StoredOutput]) -> discord.ui.View:
    """🔁 ℹ️ 🗑️ on the first row, V1…Vn under them."""
    view = discord.ui.View(timeout=None)
    for action in ("reroll", "info", "delete"):
        view.add_item(result_button(action, job.id))
    for output in outputs:
        view.add_item(result_button("vary", job.id, output.index + 1))
    # Stopped, so discord.py does not keep it per message: clicks go to the cog's DynamicItem, after a restart too.
    view.stop()
    return view


__all__ = ["TEMPLATE", "custom_id", "result_button", "result_view"]
