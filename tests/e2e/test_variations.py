"""HD, Vary (Subtle/Strong), the reframe buttons and Remix, through the real client, across a restart."""

from __future__ import annotations

from bot.client import FluxcordBot
from bot.core.images import normalize_input
from bot.core.requests import ImagineOptions, ModelId
from bot.jobs.service import Requester
from emulators.discord.emulator import DiscordEmulator, Member
from emulators.discord.messages import Interaction, StoredMessage, custom_ids
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, decoded, delivered, job_id_from, png, wait_result

OTHER_SERVER = 434343


async def answer(interaction: Interaction) -> str:
    return (await interaction.wait_reply(lambda m: not m.loading)).content


async def vary_result(
    discord_emu: DiscordEmulator, member: Member, *, count: int = 1, ratio: str = "1:1"
) -> tuple[str, StoredMessage]:
    ack = await discord_emu.slash(
        "vary",
        user=member,
        options={"count": count, "megapixels": "0.25", "seed": 777, "aspect_ratio": ratio},
        attachments={"image": ("in.png", png(), "image/png")},
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    return job_id, await wait_result(discord_emu, job_id)


async def imagine_result(discord_emu: DiscordEmulator, member: Member, prompt: str) -> tuple[str, StoredMessage]:
    ack = await discord_emu.slash(
        "imagine", user=member, options={"prompt": prompt, "megapixels": "0.25", "seed": 99, "aspect_ratio": "3:2"}
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    return job_id, await wait_result(discord_emu, job_id)


async def spendable(bot: FluxcordBot, discord_emu: DiscordEmulator, member: Member) -> int:
    return (await bot.services.generation.credits(discord_emu.guild_id, member.id)).balance.spendable


async def test_a_small_vary_result_carries_hd_subtle_strong_and_reframe_and_hd_works_after_a_restart(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    job_id, result = await vary_result(discord_emu, alice)
    assert custom_ids(result) == [
        f"fx:vary:{job_id}:1",
        f"fx:subtle:{job_id}:1",
        f"fx:strong:{job_id}:1",
        f"fx:hd:{job_id}",
        f"fx:frame-16x9:{job_id}:1",
        f"fx:frame-9x16:{job_id}:1",
        f"fx:reroll:{job_id}",
        f"fx:star:{job_id}",
        f"fx:info:{job_id}",
        f"fx:delete:{job_id}",
    ]
    labels = {b.get("custom_id"): b.get("label") for row in result.components for b in row["components"]}
    assert labels[f"fx:hd:{job_id}"] == "HD (re-render at 1 MP)"
    assert (labels[f"fx:subtle:{job_id}:1"], labels[f"fx:strong:{job_id}:1"]) == ("Vary (Subtle)", "Vary (Strong)")
    assert len(result.components) == 4 and all(len(row["components"]) <= 5 for row in result.components)
    source = await first.services.jobs.get(job_id)
    assert source is not None
    await first.close()

    second = await start_bot()
    click = await discord_emu.click(result, f"fx:hd:{job_id}", user=bob)
    hd_id = job_id_from((await click.wait_content("Re-rendering as job")).content)
    hd = await wait_result(discord_emu, hd_id)
    assert decoded(hd) == [("WEBP", (1024, 1024))]
    job = await second.services.generation.job(hd_id)
    # The same input, seed and options at 1 MP, paid by the clicker at the 1 MP price.
    assert job.spec == source.spec.model_copy(update={"megapixels": "1"})
    assert (job.input_sha256, job.origin, job.parent_job_id, job.user_id) == (source.input_sha256, "hd", job_id, bob.id)
    assert job.cost == job.charged == 1
    body = segmind.jobs[job.provider_job_id or ""].body
    assert (body["seed"], str(body["megapixels"])) == (777, "1")
    assert await spendable(second, discord_emu, bob) == 19
    # An HD result is 1 MP: it offers no HD of its own.
    assert f"fx:hd:{hd_id}" not in custom_ids(hd)


async def test_subtle_and_strong_run_redux_dev_tuned_apart(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice = discord_emu.add_member("alice")
    job_id, result = await vary_result(discord_emu, alice)
    outputs = await bot.services.generation.outputs(job_id)

    found = {}
    for action, word in (("subtle", "subtly"), ("strong", "strongly")):
        click = await discord_emu.click(result, f"fx:{action}:{job_id}:1", user=alice)
        new_id = job_id_from((await click.wait_content(f"Varying image 1 {word}")).content)
        await wait_result(discord_emu, new_id)
        job = await bot.services.generation.job(new_id)
        body = segmind.jobs[job.provider_job_id or ""].body
        found[action] = (job.spec.model, body["guidance"], body["num_inference_steps"], job.cost)
        assert (job.origin, job.parent_index) == (action, 1)
        assert job.input_sha256 == normalize_input(outputs[0].data).sha256
        # The input goes to Segmind Storage first; the job names it by URL.
        assert segmind.assets[body["redux_image"]] == normalize_input(outputs[0].data).data
    # Subtle follows the image more (higher guidance, more steps) than Redux dev's defaults, Strong less.
    assert found == {"subtle": (ModelId.REDUX_DEV, 4.5, 36, 2), "strong": (ModelId.REDUX_DEV, 1.5, 20, 2)}


async def test_on_a_larger_result_subtle_and_reframe_ask_which_image_first(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    job_id, result = await vary_result(discord_emu, alice, count=2)
    submits = segmind.counts["submit"]

    ask = await discord_emu.click(result, f"fx:frame-16x9:{job_id}", user=bob)
    question = await ask.wait_reply(lambda m: not m.loading)
    assert question.ephemeral and question.content == "Reframe at 16:9: which image?"
    assert custom_ids(question) == [f"fx:frame-16x9:{job_id}:1", f"fx:frame-16x9:{job_id}:2"]
    assert segmind.counts["submit"] == submits  # asking costs nothing
    await first.close()

    second = await start_bot()  # the question's buttons work after a restart too
    pick = await discord_emu.click(question, f"fx:frame-16x9:{job_id}:2", user=bob)
    framed_id = job_id_from((await pick.wait_content("Reframing image 2 at 16:9")).content)
    framed = await wait_result(discord_emu, framed_id)
    assert decoded(framed) == [("WEBP", (672, 384))] * 2
    job = await second.services.generation.job(framed_id)
    assert (job.origin, job.parent_index, job.spec.aspect_ratio, job.user_id) == ("reframe", 2, "16:9", bob.id)
    outputs = await second.services.generation.outputs(job_id)
    assert job.input_sha256 == normalize_input(outputs[1].data).sha256

    ask = await discord_emu.click(result, f"fx:subtle:{job_id}", user=bob)
    assert (await answer(ask)) == "Vary (Subtle): which image?"


async def test_remix_opens_a_form_with_the_prompt_and_starts_the_edited_job(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    first = await start_bot()
    alice, bob = discord_emu.add_member("alice"), discord_emu.add_member("bob")
    job_id, result = await imagine_result(discord_emu, alice, "a lighthouse at dawn")
    assert f"fx:remix:{job_id}" in custom_ids(result)
    await first.close()

    second = await start_bot()
    click = await discord_emu.click(result, f"fx:remix:{job_id}", user=bob)
    await click.wait_answered()
    assert click.modal is not None and click.modal["title"] == "Remix"
    boxes = {
        label["component"]["custom_id"]: label["component"].get("value")
        for label in click.modal["components"]
        if label.get("type") == 18
    }
    assert len(boxes) == 5
    assert sorted(boxes.values()) == sorted(["a lighthouse at dawn", "3:2", "1", "0.25", "99"])
    names = field_ids(click)
    assert segmind.counts["submit"] == 1  # nothing started by opening the form

    values = {names["Prompt"]: "a lighthouse at dusk", names["Aspect ratio"]: "16:9", names["Seed"]: "99"}
    sent = await discord_emu.submit_modal(click, values)
    remix_id = job_id_from((await sent.wait_content("Remixing as job")).content)
    remix = await wait_result(discord_emu, remix_id)
    assert decoded(remix) == [("WEBP", (672, 384))]
    job = await second.services.generation.job(remix_id)
    assert (job.spec.prompt, job.spec.seed, job.origin, job.parent_job_id) == (
        "a lighthouse at dusk",
        99,
        "remix",
        job_id,
    )
    assert job.user_id == bob.id and await spendable(second, discord_emu, bob) == 19

    again = await _reopen(discord_emu, result, job_id, bob)
    bad = await discord_emu.submit_modal(again, {field_ids(again)["How many images"]: "9"})
    assert await answer(bad) == "`count` must be between 1 and 4 (got '9')."


def field_ids(opened: Interaction) -> dict[str, str]:
    """The custom id of each text box of the form `opened` answered with, by its label."""
    assert opened.modal is not None
    return {label["label"]: label["component"]["custom_id"] for label in opened.modal["components"]}


async def _reopen(discord_emu: DiscordEmulator, result: StoredMessage, job_id: str, member: Member) -> Interaction:
    click = await discord_emu.click(result, f"fx:remix:{job_id}", user=member)
    await click.wait_answered()
    return click


async def test_new_buttons_never_reach_another_servers_job(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    bot = await start_bot()
    alice, mallory = discord_emu.add_member("alice"), discord_emu.add_member("mallory")
    _, result = await vary_result(discord_emu, alice)
    who = Requester(guild_id=OTHER_SERVER, user_id=mallory.id, channel_id=None, request_id="elsewhere-7")
    foreign = await bot.services.generation.imagine(who, ImagineOptions.parse(prompt="secret", megapixels="0.25"))
    await delivered(bot, foreign.id)
    submits = segmind.counts["submit"]

    for custom_id in (
        f"fx:hd:{foreign.id}",
        f"fx:subtle:{foreign.id}:1",
        f"fx:strong:{foreign.id}",
        f"fx:frame-16x9:{foreign.id}:1",
        f"fx:remix:{foreign.id}",
        f"fx:star:{foreign.id}",
    ):
        click = await discord_emu.click(result, custom_id, user=mallory, forged=True)
        assert await answer(click) == f"There is no job `{foreign.id}` on this server.", custom_id
        assert click.modal is None
    assert segmind.counts["submit"] == submits
    assert await bot.services.jobs.recent_for_member(discord_emu.guild_id, mallory.id) == []
