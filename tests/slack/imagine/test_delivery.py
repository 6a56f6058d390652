"""The SlackPoster, driven by the generator's real delivery loop against the fake Slack: placeholder
progress and final text, the grid uploaded once (through 429s, 5xx and a delivery that died half-way),
the buttons message, failures and cancellations, a channel the bot was removed from."""

from __future__ import annotations

import asyncio

import pytest

from jobs.models import Delivery, Job, Status
from tests.fakes.slack import UPLOAD_STEP, iter_actions
from tests.slack.imagine.harness import CHANNEL, USER, WORKER, SlackBot, png_size


async def imagine(bot: SlackBot, text: str = "a red fox --images 4 --seed 3", **fields: str) -> Job:
    response = await bot.slack.send_slash_command("/imagine", text, channel_id=CHANNEL, **fields)
    assert "Queued" in response.text, response.text
    job_id = int(response.text.split("job ")[1].split(":")[0])
    return await bot.wait_placeholder(job_id)


def grid_buttons(bot: SlackBot, job: Job) -> list[str]:
    message = bot.fake.message(CHANNEL, str(job.refs.extra["buttons_ts"]))
    return [element["action_id"] for element in iter_actions(message.blocks)]


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_result_updates_placeholder_uploads_grid_once_and_posts_buttons(bot: SlackBot) -> None:
    job = await imagine(bot)
    done = await bot.render_next()
    assert await bot.deliver() == 1

    job = await bot.queue.get_job(job.id)
    assert job.delivery is Delivery.DELIVERED
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert "done" in (placeholder.text or "") and list(iter_actions(placeholder.blocks)) == []

    [upload] = bot.fake.completed_uploads(CHANNEL)
    [stored_grid] = [image for image in await bot.queue.images(done.id) if image.index == -1]
    assert upload.content == stored_grid.png and png_size(upload.content) == png_size(stored_grid.png)
    assert upload.filename == f"imagine-{job.id}.png" and f"<@{USER}>" in (upload.initial_comment or "")
    assert job.refs.extra["grid_file_id"] == upload.file_id and job.refs.extra["grid_shared"] is True

    assert grid_buttons(bot, job) == [
        *(f"imagine:pick:{job.id}:{i}" for i in range(4)),
        *(f"imagine:variation:{job.id}:{i}" for i in range(4)),
        f"imagine:reroll:{job.id}",
        f"imagine:info:{job.id}",
    ]
    assert job.refs.final_message_id == job.refs.extra["buttons_ts"]
    # Every result post used the bot token, none the response_url.
    assert all(not url.bodies for url in bot.fake.response_urls.values())

    assert await bot.deliver() == 0  # delivered once, never again


async def test_progress_edits_the_placeholder_at_a_bounded_rate(bot: SlackBot) -> None:
    job = await imagine(bot)
    [claimed] = await bot.queue.claim(WORKER, max_images=8)
    deliverer = bot.deliverer(progress_seconds=60.0)
    deliverer.note_progress(claimed, 0.25)
    await deliverer.post_progress_due()
    deliverer.note_progress(claimed, 0.5)
    await deliverer.post_progress_due()  # within progress_seconds: not posted

    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert placeholder.update_count == 1
    assert "Drawing" in (placeholder.text or "") and "▰▰▱▱▱▱▱▱▱▱ 25%" in (placeholder.text or "")
    assert [a["action_id"] for a in iter_actions(placeholder.blocks)] == [
        f"imagine:cancel:{job.id}",
        f"imagine:info:{job.id}",
    ]


async def test_progress_finds_a_placeholder_recorded_after_the_claim_and_never_follows_the_result(
    bot: SlackBot,
) -> None:
    bot.fake.slow("chat.postMessage", 0.5)  # the generator claims before the placeholder exists
    await bot.slack.send_slash_command("/imagine", "a quick fox", channel_id=CHANNEL)
    [claimed] = await bot.queue.claim(WORKER, max_images=8)
    assert claimed.refs.placeholder_message_id is None
    job = await bot.wait_placeholder(claimed.id)

    deliverer = bot.deliverer(progress_seconds=0.0)
    deliverer.note_progress(claimed, 0.5)  # the render loop's snapshot: no placeholder in it
    await deliverer.post_progress_due()
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert "50%" in (placeholder.text or "")

    await bot.queue.heartbeat([claimed.id], WORKER, 0.9)
    await bot.queue.cancelled(claimed.id, WORKER)  # ended meanwhile (here: cancelled)
    deliverer.note_progress(claimed, 0.9)
    await deliverer.post_progress_due()
    assert placeholder.update_count == 1  # no stale progress after the end


async def test_429s_are_waited_out_and_the_grid_is_shared_once(bot: SlackBot) -> None:
    job = await imagine(bot)
    await bot.render_next()
    for method in ("files.completeUploadExternal", "chat.postMessage"):
        bot.fake.rate_limit(method, retry_after=1)
    assert await bot.deliver() == 1

    job = await bot.queue.get_job(job.id)
    assert job.delivery is Delivery.DELIVERED
    assert len(bot.fake.completed_uploads(CHANNEL)) == 1
    limited, retried = bot.fake.calls_to("files.completeUploadExternal")
    assert (limited.status, retried.status) == (429, 200) and retried.at - limited.at >= 1.0
    assert len(bot.fake.calls_to(UPLOAD_STEP)) == 1  # the bytes went up once
    assert [m.ts for m in bot.fake.messages_in(CHANNEL)] == [
        job.refs.placeholder_message_id,
        job.refs.extra["buttons_ts"],
    ]


async def test_persistent_429_goes_back_to_the_loop_with_retry_after_then_resumes(bot: SlackBot) -> None:
    job = await imagine(bot)
    await bot.render_next()
    bot.fake.rate_limit("chat.postMessage", times=3, retry_after=1)  # the client retries twice, then gives up
    assert await bot.deliver() == 1

    job = await bot.queue.get_job(job.id)
    assert job.delivery is Delivery.PENDING and "429" in (job.delivery_error or "")
    assert job.refs.extra["grid_shared"] is True  # the steps that succeeded are recorded ...
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert "done" not in (placeholder.text or "")  # not "done" while the buttons are missing
    assert job.delivery_next_try_at is not None

    await asyncio.sleep(1.0)  # Retry-After
    assert await bot.deliver() == 1
    job = await bot.queue.get_job(job.id)
    assert job.delivery is Delivery.DELIVERED
    assert len(bot.fake.completed_uploads(CHANNEL)) == 1  # ... so the retry did not share the grid again
    assert len(bot.fake.calls_to("files.completeUploadExternal")) == 1
    assert len([m for m in bot.fake.messages_in(CHANNEL) if m.ts == job.refs.extra["buttons_ts"]]) == 1


async def test_upload_host_failure_resumes_without_a_second_file(bot: SlackBot) -> None:
    job = await imagine(bot)
    await bot.render_next()
    bot.fake.fail(UPLOAD_STEP, status=503)
    assert await bot.deliver() == 1
    job = await bot.queue.get_job(job.id)
    assert job.delivery is Delivery.PENDING and "upload host answered 503" in (job.delivery_error or "")

    await bot.queue.delivery_failed(job.id, "retry now", retry_after=0.0)
    assert await bot.deliver() == 1
    assert (await bot.queue.get_job(job.id)).delivery is Delivery.DELIVERED
    assert len(bot.fake.completed_uploads(CHANNEL)) == 1


async def test_a_delivery_that_dies_half_way_is_finished_once_by_the_next(bot: SlackBot) -> None:
    """The generator dies after sharing the grid, while posting the buttons: the next deliverer (after the
    hold) posts the buttons and shares nothing again."""
    job = await imagine(bot)
    await bot.render_next()
    bot.fake.slow("chat.postMessage", 5.0)
    hold = 3.0  # the dead deliverer's claim on the job; a post may take half of it
    first = asyncio.create_task(bot.deliverer(hold_seconds=hold).deliver_due())
    await bot.fake.wait_until(lambda: bot.fake.calls_to("chat.postMessage")[1:], what="the buttons post")
    first.cancel()  # the process is gone
    await asyncio.gather(first, return_exceptions=True)
    assert (await bot.queue.get_job(job.id)).delivery is Delivery.PENDING

    await asyncio.sleep(hold + 0.1)  # the dead deliverer's hold expires
    assert await bot.deliver() == 1
    job = await bot.queue.get_job(job.id)
    assert job.delivery is Delivery.DELIVERED
    assert len(bot.fake.completed_uploads(CHANNEL)) == 1
    assert len(bot.fake.calls_to(UPLOAD_STEP)) == 1


async def test_failed_job_says_why_in_the_placeholder_and_to_the_requester(bot: SlackBot) -> None:
    job = await imagine(bot)
    [claimed] = await bot.queue.claim(WORKER, max_images=8)
    await bot.queue.fail(claimed.id, WORKER, reason="the generator ran out of memory", retryable=False)
    assert await bot.deliver() == 1

    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert "Couldn't draw" in (placeholder.text or "") and "ran out of memory" in (placeholder.text or "")
    [note] = bot.fake.ephemerals
    assert note["user"] == USER and "failed: the generator ran out of memory" in note["text"]
    assert bot.fake.completed_uploads() == []
    assert (await bot.queue.get_job(job.id)).delivery is Delivery.DELIVERED


async def test_bot_removed_before_delivery_is_undeliverable_at_once_with_the_reason(bot: SlackBot) -> None:
    job = await imagine(bot)
    await bot.render_next()
    bot.fake.add_channel(CHANNEL, is_member=False)
    bot.fake.clear_faults()
    assert await bot.deliver() == 1
    job = await bot.queue.get_job(job.id)
    # chat.update of the placeholder works in the fake without membership; the upload does not, and no
    # retry within the hour would change that: the job is undeliverable now, the reason kept for admins.
    assert job.delivery is Delivery.UNDELIVERABLE and job.delivery_attempts == 1
    assert job.delivery_error == f"not_in_channel: the bot cannot post in {CHANNEL} (invite it, then reroll)"
    assert await bot.deliver() == 0  # nothing left to retry


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_buttons_reroll_variation_pick_cancel_and_parameters(bot: SlackBot) -> None:
    bot.fake.add_user("U0STRANGER")
    job = await imagine(bot)
    await bot.render_next()
    await bot.deliver()
    job = await bot.queue.get_job(job.id)
    buttons_ts = str(job.refs.extra["buttons_ts"])

    async def click(action_id: str, user_id: str = USER, on: str = buttons_ts) -> dict[str, object] | None:
        response = await bot.slack.send_block_action(
            action_id, channel_id=CHANNEL, message_ts=on, user_id=user_id
        )
        assert response.status == 200 and response.elapsed < 3.0
        url = bot.fake.response_urls[response.response_url_id]
        try:
            await bot.fake.wait_until(lambda: url.bodies, timeout=1.0)
        except AssertionError:
            return None
        return url.bodies[-1]

    info = await click(f"imagine:info:{job.id}")
    assert info is not None and "*Seed:* 3" in str(info["text"]) and info["response_type"] == "ephemeral"

    reroll = await click(f"imagine:reroll:{job.id}")
    assert reroll is not None and "Queued" in str(reroll["text"])
    variation = await click(f"imagine:variation:{job.id}:2", user_id="U0STRANGER")
    assert variation is not None and "Queued" in str(variation["text"])
    rerolled = await bot.wait_placeholder(job.id + 1)
    varied = await bot.wait_placeholder(job.id + 2)
    assert (rerolled.kind, rerolled.parent_job_id, rerolled.prompt) == ("reroll", job.id, job.prompt)
    assert (varied.kind, varied.image_index, varied.user_id) == ("variation", 2, "U0STRANGER")
    assert "variations of image 3" in (
        bot.fake.message(CHANNEL, varied.refs.placeholder_message_id or "").text or ""
    )

    on_placeholder = rerolled.refs.placeholder_message_id or ""
    refused = await click(f"imagine:cancel:{rerolled.id}", user_id="U0STRANGER", on=on_placeholder)
    assert refused is not None and "Only the person who asked" in str(refused["text"])
    cancelled = await click(f"imagine:cancel:{rerolled.id}", on=on_placeholder)
    assert cancelled is not None and "Cancelled job" in str(cancelled["text"])
    assert (await bot.queue.get_job(rerolled.id)).status is Status.CANCELLED

    picked = await click(f"imagine:pick:{job.id}:1")
    assert picked is None  # nothing to say: the picture itself follows
    pick = await bot.queue.get_job(job.id + 3)
    assert (pick.kind, pick.status, pick.image_index) == ("pick", Status.DONE, 1)
    await bot.deliver()  # the cancelled reroll and the pick
    [_grid, picked_upload] = bot.fake.completed_uploads(CHANNEL)
    [stored] = [image for image in await bot.queue.images(job.id) if image.index == 1]
    assert picked_upload.content == stored.png
    pick = await bot.queue.get_job(pick.id)
    assert grid_buttons(bot, pick) == [
        f"imagine:variation:{pick.id}:0",
        f"imagine:upscale:{pick.id}:0",
        f"imagine:reroll:{pick.id}",
        f"imagine:info:{pick.id}",
    ]
    rerolled = await bot.queue.get_job(rerolled.id)
    assert "was cancelled" in (
        bot.fake.message(CHANNEL, rerolled.refs.placeholder_message_id or "").text or ""
    )


async def test_unknown_button_and_missing_job(bot: SlackBot) -> None:
    response = await bot.slack.send_block_action("imagine:info:999", channel_id=CHANNEL)
    url = bot.fake.response_urls[response.response_url_id]
    await bot.fake.wait_until(lambda: url.bodies)
    assert "There is no job #999" in url.bodies[0]["text"]
    bad = await bot.slack.send_block_action("imagine:explode:1", channel_id=CHANNEL)
    bad_url = bot.fake.response_urls[bad.response_url_id]
    await bot.fake.wait_until(lambda: bad_url.bodies)
    assert "doesn't belong to a job I know" in bad_url.bodies[0]["text"]


async def test_an_admin_may_cancel_someone_elses_job(bot: SlackBot) -> None:
    bot.fake.add_user("U0ADMIN", is_admin=True)
    job = await imagine(bot)
    response = await bot.slack.send_block_action(
        f"imagine:cancel:{job.id}",
        channel_id=CHANNEL,
        message_ts=job.refs.placeholder_message_id,
        user_id="U0ADMIN",
    )
    url = bot.fake.response_urls[response.response_url_id]
    await bot.fake.wait_until(lambda: url.bodies, what="the answer")
    assert f"Cancelled job #{job.id}" in url.bodies[0]["text"]
    assert (await bot.queue.get_job(job.id)).status is Status.CANCELLED
    assert await bot.deliver() == 1
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert "was cancelled" in (placeholder.text or "") and list(iter_actions(placeholder.blocks)) == []


async def test_a_slack_error_page_that_is_not_json_is_retried_with_its_status(
    bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy answers text/plain, an overloaded edge HTML: read as the status, retried, no poster bug."""
    job = await imagine(bot)
    await bot.render_next()
    pages = [
        (503, "upstream gone", "text/plain"),
        (502, "<html><body>Bad Gateway</body></html>", "text/html"),
    ]
    for status, text, content_type in pages:
        bot.fake.fail_with_page(
            "files.getUploadURLExternal", status=status, text=text, content_type=content_type
        )
        await bot.queue.delivery_failed(job.id, "retry now", retry_after=0.0)
        assert await bot.deliver() == 1
        job = await bot.queue.get_job(job.id)
        assert job.delivery is Delivery.PENDING  # transient: the delivery loop tries again later
        assert job.delivery_error == f"Slack refused ({status}): http_{status}"
    assert not [r for r in caplog.records if r.exc_info or getattr(r, "action", "") == "delivery_error"]

    await bot.queue.delivery_failed(job.id, "retry now", retry_after=0.0)
    assert await bot.deliver() == 1
    assert (await bot.queue.get_job(job.id)).delivery is Delivery.DELIVERED
