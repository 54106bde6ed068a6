"""The `/fluxadmin usage` picture: credits spent and jobs per day as a PNG bar chart."""

from __future__ import annotations

import asyncio
import io

from PIL import Image, ImageDraw, ImageFont

from storage.guilds import DayUsage

WIDTH, HEIGHT = 900, 420
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 60, 60, 50, 70
BACKGROUND = (43, 45, 49)
GRID = (70, 73, 79)
TEXT = (220, 221, 222)
SPENT = (88, 101, 242)
JOBS = (87, 242, 135)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: a fixed bitmap font
        return ImageFont.load_default()


def usage_chart(days: list[DayUsage], title: str) -> bytes:
    """Two bars a day (credits spent, jobs run) on one shared day axis; left scale credits, right scale jobs."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, big = _font(13), _font(18)
    draw.text((MARGIN_LEFT, 14), title, fill=TEXT, font=big)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top_spent = max([d.spent for d in days] + [1])
    top_jobs = max([d.jobs for d in days] + [1])
    for step in range(5):
        y = MARGIN_TOP + plot_h * step / 4
        draw.line([(MARGIN_LEFT, y), (WIDTH - MARGIN_RIGHT, y)], fill=GRID)
        draw.text((8, y - 7), f"{round(top_spent * (4 - step) / 4)}", fill=SPENT, font=small)
        draw.text((WIDTH - MARGIN_RIGHT + 8, y - 7), f"{round(top_jobs * (4 - step) / 4)}", fill=JOBS, font=small)
    slot = plot_w / max(1, len(days))
    bar = max(2.0, slot * 0.35)
    base = MARGIN_TOP + plot_h
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        x = MARGIN_LEFT + index * slot + slot / 2
        spent_h = plot_h * day.spent / top_spent
        jobs_h = plot_h * day.jobs / top_jobs
        if day.spent:
            draw.rectangle([x - bar, base - spent_h, x, base], fill=SPENT)
        if day.jobs:
            draw.rectangle([x, base - jobs_h, x + bar, base], fill=JOBS)
        if index % label_every == 0:
            draw.text((x - 18, base + 8), day.day[5:], fill=TEXT, font=small)
    legend_y = HEIGHT - 28
    draw.rectangle([MARGIN_LEFT, legend_y, MARGIN_LEFT + 14, legend_y + 14], fill=SPENT)
    draw.text((MARGIN_LEFT + 20, legend_y), "credits spent (left)", fill=TEXT, font=small)
    draw.rectangle([MARGIN_LEFT + 220, legend_y, MARGIN_LEFT + 234, legend_y + 14], fill=JOBS)
    draw.text((MARGIN_LEFT + 240, legend_y), "jobs (right)", fill=TEXT, font=small)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


async def usage_chart_async(days: list[DayUsage], title: str) -> bytes:
    """Drawn in a worker thread: charts are blocking work."""
    return await asyncio.to_thread(usage_chart, days, title)
