"""Members generate images through the real client: /vary, /imagine, the message menu, credits."""

from __future__ import annotations

from emulators.discord.emulator import DiscordEmulator
from emulators.discord.messages import custom_ids
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, decoded, job_id_from, png, wait_result


async def spendable(discord_emu: DiscordEmulator, member: object) -> int:
    reply = await discord_emu.slash("credits", user=member)  # type: ignore[arg-type]
    message = await reply.wait_reply(lambda m: bool(m.embeds))
    field = next(f for f in message.embeds[0]["fields"] if f["name"] == "Spendable")
    return int(field["value"].split("**")[1])


async def test_vary_with_a_png_posts_four_images_and_charges_the_price(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    await start_bot()
    alice = discord_emu.add_member("alice")
    assert await spendable(discord_emu, alice) == 20

    ack = await discord_emu.slash(
        "vary",
        user=alice,
        options={"count": 4, "aspect_ratio": "16:9"},
        attachments={"image": ("cat.png", png(), "image/png")},
    )
    reply = await ack.wait_content("Queued job")
    assert ack.ephemeral and reply.ephemeral
    job_id = job_id_from(reply.content)
    result = await wait_result(discord_emu, job_id)

    assert not result.ephemeral and result.author_id == discord_emu.bot_user_id
    assert decoded(result) == [("WEBP", (1344, 768))] * 4
    # The same message went from queued through running to the result.
    states = result.contents
    assert any("Queued" in text for text in states)
    assert any("Running on Segmind" in text for text in states)
    assert "Done" in states[-1]
    embed = result.embeds[0]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Cost"] == "4 credits" and fields["Size"] == "1344×768 WEBP"
    assert fields["Seed"].strip("`").isdigit()
    # V1–V4; Subtle and Strong (which image is asked on click); reframes but to its own 16:9; the job's row.
    # No HD: it is already 1 MP, and no Remix: it has no prompt.
    assert custom_ids(result) == [
        *(f"fx:vary:{job_id}:{n}" for n in range(1, 5)),
        f"fx:subtle:{job_id}",
        f"fx:strong:{job_id}",
        f"fx:frame-1x1:{job_id}",
        f"fx:frame-9x16:{job_id}",
        f"fx:reroll:{job_id}",
        f"fx:star:{job_id}",
        f"fx:info:{job_id}",
        f"fx:delete:{job_id}",
    ]
    assert await spendable(discord_emu, alice) == 16
    assert segmind.counts["submit"] == 1


async def test_imagine_posts_the_images(discord_emu: DiscordEmulator, start_bot: Start) -> None:
    await start_bot()
    bob = discord_emu.add_member("bob")
    ack = await discord_emu.slash(
        "imagine",
        user=bob,
        options={"prompt": "a lighthouse at dawn", "count": 2, "aspect_ratio": "3:2", "format": "png"},
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)
    assert decoded(result) == [("PNG", (1216, 832))] * 2
    assert "a lighthouse at dawn" in result.content
    assert await spendable(discord_emu, bob) == 16  # schnell: 2 per 1 MP image


async def test_the_message_menu_varies_the_attached_image(
    discord_emu: DiscordEmulator, segmind: SegmindEmulator, start_bot: Start
) -> None:
    await start_bot()
    carol = discord_emu.add_member("carol")
    posted = discord_emu.post_message(
        author=carol, content="look", attachments=[("tall.png", png(200, 400), "image/png")]
    )
    menu = await discord_emu.context_menu("Vary with FLUX", user=carol, message=posted)
    await menu.wait_answered()
    # The options are asked in a form first, filled in with the defaults; nothing starts before it is sent.
    assert menu.modal is not None and menu.modal["title"] == "Vary with FLUX"
    assert segmind.counts["submit"] == 0
    ack = await discord_emu.submit_modal(menu, {"model": "schnell", "count": "1", "aspect_ratio": "auto"})
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)
    assert decoded(result) == [("WEBP", (768, 1344))]  # auto: 1:2 is nearest 9:16
    assert await spendable(discord_emu, carol) == 19


async def test_the_message_menu_on_a_message_without_an_image_is_refused(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    await start_bot()
    carol = discord_emu.add_member("carol")
    posted = discord_emu.post_message(author=carol, content="no picture here")
    ack = await discord_emu.context_menu("Vary with FLUX", user=carol, message=posted)
    reply = await ack.wait_content("has no image")
    assert reply.ephemeral


async def test_images_over_the_upload_limit_are_reencoded_smaller(
    discord_emu: DiscordEmulator, start_bot: Start
) -> None:
    discord_emu.upload_limit = 400_000
    await start_bot()
    dana = discord_emu.add_member("dana")
    ack = await discord_emu.slash(
        "imagine", user=dana, options={"prompt": "a very detailed city", "count": 4, "format": "png"}
    )
    job_id = job_id_from((await ack.wait_content("Queued job")).content)
    result = await wait_result(discord_emu, job_id)
    assert len(result.attachments) == 4
    assert sum(len(attachment.data) for attachment in result.attachments) <= 400_000
    assert all(size[0] > 0 for _, size in decoded(result))
