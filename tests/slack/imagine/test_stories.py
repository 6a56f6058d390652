"""Whole stories: a Slack user, the real Bolt app (HTTP mode), and the real generator — render loop on a
tiny random checkpoint plus delivery loop with the real SlackPoster — running in this process against
the same SQLite database, all talking to the fake Slack.

The tiny model draws 32×32 pictures from a 64-code book; everything else (normalizer, tokenizer, sampler,
VQGAN decoder, grid, continuous batching, leases, delivery) is the production path.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack.poster import SlackPoster
from generator.delivery import Deliverer
from generator.engine import ModelEngine
from generator.scheduler import RenderLoop
from generator.worker import Worker
from jobs.db import connect
from jobs.models import Delivery, Job, Status
from jobs.queue import Queue
from tests.fakes.slack import UPLOAD_STEP, iter_actions, iter_slack_files
from tests.slack.imagine.harness import CHANNEL, USER, SlackBot, png_size

STORY_SECONDS = 60.0
TINY_PICTURE_SIZE = 32  # pixels: the tiny VQGAN's images


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from generator.testing import make_tiny_checkpoints

    return make_tiny_checkpoints(tmp_path_factory.mktemp("tiny-slack"), seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoints: tuple[Path, Path]) -> object:
    import torch

    from generator.model.dalle import DalleMini

    torch.manual_seed(0)
    return DalleMini.load(*tiny_checkpoints)


class SlowUpscaler:
    """The tiny Swin2SR in 16-px tiles with a pause after each, so a test can act mid-upscale (as
    FaultyEngine's step_delay slows the sampler)."""

    def __init__(self, directory: Path, *, pause_seconds: float = 0.15) -> None:
        from generator.model.upscale import Upscaler

        self.upscaler = Upscaler.load(directory)
        self.pause_seconds = pause_seconds

    def upscale(self, image: Any, *, should_stop: Any = None, progress: Any = None) -> Any:
        def paced(fraction: float) -> None:
            time.sleep(self.pause_seconds)
            if progress is not None:
                progress(fraction)

        return self.upscaler.upscale(image, tile=16, overlap=4, should_stop=should_stop, progress=paced)


@pytest.fixture(scope="session")
def upscaler(tiny_checkpoints: tuple[Path, Path]) -> SlowUpscaler:
    from generator.testing import tiny_extras

    return SlowUpscaler(tiny_extras(tiny_checkpoints[0])[1])


@dataclass
class Generator:
    """One in-process generator: render loop + delivery loop + registry, as `python -m generator.serve`,
    on a connection pool of its own as a process of its own has."""

    worker: Worker
    render: RenderLoop
    deliverer: Deliverer
    stop: asyncio.Event
    task: asyncio.Task[None]
    engine: AsyncEngine
    checked_out: set[Any]  # the DBAPI connections of its pool in use now

    async def kill(self) -> None:
        """Die without a clean stop (no release, no final pass): what SIGKILL leaves behind. The process's
        database connections die with it, and with them any write lock a cancelled transaction still
        held: an interrupted in-process task cannot be relied on to have rolled back."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        for connection in list(self.checked_out):  # its tasks are gone: nothing will give these back
            connection.terminate()  # outside a greenlet: a forced close, as the OS does at exit
        await self.engine.dispose()


@pytest.fixture
async def start_generator(
    tiny_model: object, queue: Queue, db_url: str, poster: SlackPoster, upscaler: SlowUpscaler
) -> AsyncIterator[Callable[..., Generator]]:
    started: list[Generator] = []

    def start(
        *,
        worker_id: str = "gen-1",
        lease_seconds: float = 30.0,
        previews: bool = False,
        step_delay: float = 0.0,
    ) -> Generator:
        from tests.worker.harness import FaultyEngine

        pool = connect(db_url)
        checked_out: set[Any] = set()
        event.listen(pool.sync_engine, "checkout", lambda dbapi, *_: checked_out.add(dbapi))
        event.listen(pool.sync_engine, "checkin", lambda dbapi, _record: checked_out.discard(dbapi))
        event.listen(pool.sync_engine, "invalidate", lambda dbapi, *_: checked_out.discard(dbapi))
        own_queue = Queue(engine=pool, limits=queue.limits)
        model: Any = ModelEngine(tiny_model, capacity=8, model_name="tiny")  # type: ignore[arg-type]
        if step_delay:  # a slower "GPU", so progress edits can see the grid form
            model = FaultyEngine(model, error=RuntimeError("never"), failures=0, step_delay=step_delay)
        render = RenderLoop(
            queue=own_queue,
            engine=model,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            idle_poll_seconds=0.05,
            busy_poll_seconds=0.05,
            progress_seconds=0.05,
            stop_grace_seconds=0.0,
            upscaler=upscaler,
            previews=previews,
        )
        deliverer = Deliverer(
            queue=own_queue,
            posters={"slack": poster},
            poll_seconds=0.05,
            progress_seconds=0.05,
            hold_seconds=10.0,
        )
        render.on_progress, render.on_finished = deliverer.note_progress, deliverer.note_finished
        render.on_preview = deliverer.note_preview
        worker = Worker(
            queue=own_queue, worker_id=worker_id, render=render, deliverer=deliverer, registry_seconds=0.2
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        generator = Generator(worker, render, deliverer, stop, task, pool, checked_out)
        started.append(generator)
        return generator

    yield start
    for generator in started:
        generator.stop.set()
        if not generator.task.done():
            await asyncio.wait({generator.task}, timeout=10.0)
        await generator.kill()


async def created(bot: SlackBot, job_id: int) -> None:
    """A click is acked first and its job enqueued after: wait (bounded) until job `job_id` exists."""

    async def poll() -> None:
        while await bot.job_count() < job_id:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), STORY_SECONDS)


async def delivered(bot: SlackBot, job_id: int) -> Job:
    return await _wait(bot, job_id, lambda j: j.delivery is Delivery.DELIVERED, "delivered")


async def _wait(bot: SlackBot, job_id: int, predicate: Callable[[Job], bool], what: str) -> Job:
    async def poll() -> Job:
        while not predicate(job := await bot.queue.get_job(job_id)):
            await asyncio.sleep(0.05)
        return job

    try:
        return await asyncio.wait_for(poll(), STORY_SECONDS)
    except TimeoutError:
        job = await bot.queue.get_job(job_id)
        raise AssertionError(
            f"job {job_id} not {what}: {job.status} / {job.delivery} ({job.delivery_error}), "
            f"held by {job.lease_owner} until {job.lease_expires_at}, attempt {job.attempts}, "
            f"progress {job.progress}"
        ) from None


async def test_imagine_story_with_the_real_generator(
    bot: SlackBot, start_generator: Callable[..., Generator]
) -> None:
    start_generator()
    response = await bot.slack.send_slash_command(
        "/imagine", "a lighthouse at dusk --images 4 --seed 11", channel_id=CHANNEL, user_id=USER
    )
    assert response.status == 200 and response.elapsed < 3.0 and "Queued" in response.text

    job = await delivered(bot, 1)
    assert job.status is Status.DONE and job.gpu_seconds and job.gpu_seconds > 0
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    texts = [version["text"] for version in placeholder.history] + [placeholder.text]
    assert texts[0].startswith("⏳") and texts[-1].startswith("✅")
    assert any("Drawing" in (text or "") for text in texts), texts  # progress was shown on the way

    [upload] = bot.fake.completed_uploads(CHANNEL)
    assert upload.content is not None and upload.content.startswith(b"\x89PNG")
    gutter = 4
    assert png_size(upload.content) == (2 * TINY_PICTURE_SIZE + 3 * gutter,) * 2  # a 2×2 grid
    buttons = bot.fake.message(CHANNEL, str(job.refs.extra["buttons_ts"]))
    assert (
        len([b for b in iter_actions(buttons.blocks) if b["action_id"].startswith("imagine:variation:")]) == 4
    )

    # Variations of image 2, from the grid's button, by someone else: rendered and delivered too.
    click = await bot.slack.send_block_action(
        "imagine:variation:1:1", channel_id=CHANNEL, message_ts=buttons.ts, user_id="U0FRIEND"
    )
    assert click.status == 200 and click.elapsed < 3.0
    answer = bot.fake.response_urls[click.response_url_id]
    await bot.fake.wait_until(lambda: answer.bodies, what="the click's answer")
    assert "Queued" in answer.bodies[0]["text"], answer.bodies
    variation = await delivered(bot, 2)
    assert (variation.kind, variation.parent_job_id, variation.image_index, variation.status) == (
        "variation",
        1,
        1,
        Status.DONE,
    )
    assert len(bot.fake.completed_uploads(CHANNEL)) == 2

    # The same seed draws the same grid: a reroll with a fixed seed is the way to reproduce.
    await bot.slack.send_slash_command(
        "/imagine", "a lighthouse at dusk --images 4 --seed 11", channel_id=CHANNEL
    )
    again = await delivered(bot, 3)
    uploads = {u.file_id: u for u in bot.fake.completed_uploads(CHANNEL)}
    assert uploads[str(again.refs.extra["grid_file_id"])].content == upload.content


async def test_progress_edits_show_a_preview_of_the_grid_forming(
    bot: SlackBot, start_generator: Callable[..., Generator]
) -> None:
    start_generator(previews=True, step_delay=0.004)  # ~1 s of drawing: several progress edits
    await bot.slack.send_slash_command("/imagine", "a fox at dawn --images 4 --seed 2", channel_id=CHANNEL)
    job = await delivered(bot, 1)

    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    with_preview = [version for version in placeholder.history if list(iter_slack_files(version["blocks"]))]
    assert with_preview, [version["text"] for version in placeholder.history]
    assert "Drawing" in with_preview[0]["text"]  # the progress line stays, the picture under it
    [image] = iter_slack_files(with_preview[0]["blocks"])
    assert image["alt_text"].startswith("Preview of") and "% drawn" in image["alt_text"]
    preview = bot.fake.uploads[image["slack_file"]["id"]]
    assert preview.is_completed and preview.channel_id is None  # uploaded, never shared in the channel
    assert preview.content is not None
    first = Image.open(io.BytesIO(preview.content)).convert("RGB")
    assert first.size == (2 * 128 + 3 * 4,) * 2  # 2×2 previews of 128 px, the grid's gutters
    # the bottom code rows were not drawn yet: neutral grey, not the picture
    assert first.getpixel((4 + 64, 4 + 127)) == (128, 128, 128)
    assert not list(iter_slack_files(placeholder.blocks))  # done: the preview gave way to the grid
    [grid] = bot.fake.completed_uploads(CHANNEL)
    assert grid.content is not None and png_size(grid.content) == (2 * TINY_PICTURE_SIZE + 3 * 4,) * 2


async def test_a_failing_preview_upload_keeps_text_progress_and_delivers_the_grid_once(
    bot: SlackBot, start_generator: Callable[..., Generator], caplog: pytest.LogCaptureFixture
) -> None:
    # Slack's edge answers the preview's upload request with an HTML page (not JSON), then recovers.
    bot.fake.fail_with_page("files.getUploadURLExternal", status=502)
    start_generator(previews=True, step_delay=0.004)
    with caplog.at_level(logging.INFO, logger="bot.slack.poster"):
        await bot.slack.send_slash_command("/imagine", "a fox at dusk --images 4", channel_id=CHANNEL)
        job = await delivered(bot, 1)

    assert job.status is Status.DONE and job.attempts == 1
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    versions = [*placeholder.history, {"text": placeholder.text, "blocks": placeholder.blocks}]
    assert not [v for v in versions if list(iter_slack_files(v["blocks"]))]  # text progress only
    assert any("Drawing" in (v["text"] or "") for v in versions)
    skipped = [r for r in caplog.records if getattr(r, "action", None) == "preview_skipped"]
    assert [r.getMessage() for r in skipped] == ["preview not shown: http_502"]  # logged once
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 2  # the failed preview, the grid
    [grid] = bot.fake.completed_uploads()
    assert grid.channel_id == CHANNEL and grid.file_id == job.refs.extra["grid_file_id"]
    assert len([m for m in bot.fake.messages_in(CHANNEL) if m.ts == job.refs.extra["buttons_ts"]]) == 1


async def test_generator_killed_mid_batch_renders_again_and_posts_once(
    bot: SlackBot, start_generator: Callable[..., Generator]
) -> None:
    first = start_generator(worker_id="gen-doomed", lease_seconds=1.0)
    bot.fake.rate_limit(
        "files.completeUploadExternal", retry_after=1
    )  # and a 429 on the way, for good measure
    await bot.slack.send_slash_command("/imagine", "a crashing wave --images 2", channel_id=CHANNEL)
    await _wait(bot, 1, lambda j: j.status is Status.RUNNING and j.progress > 0, "drawing")
    await first.kill()  # mid-batch: the lease is held by a dead process

    start_generator(worker_id="gen-2")  # its registry reaps the expired lease; the job is drawn again
    job = await delivered(bot, 1)
    assert job.status is Status.DONE and job.attempts == 2
    assert len(bot.fake.completed_uploads(CHANNEL)) == 1
    assert len(bot.fake.calls_to(UPLOAD_STEP)) == 1
    assert len([m for m in bot.fake.messages_in(CHANNEL) if m.ts == job.refs.extra["buttons_ts"]]) == 1


async def test_cancel_while_drawing_stops_the_job_and_says_so(
    bot: SlackBot, start_generator: Callable[..., Generator]
) -> None:
    start_generator()
    await bot.slack.send_slash_command("/imagine", "a slow sunrise --images 8", channel_id=CHANNEL)
    job = await _wait(
        bot, 1, lambda j: j.status is Status.RUNNING and bool(j.refs.placeholder_message_id), "drawing"
    )
    click = await bot.slack.send_block_action(
        "imagine:cancel:1", channel_id=CHANNEL, message_ts=job.refs.placeholder_message_id, user_id=USER
    )
    assert click.status == 200
    job = await delivered(bot, 1)
    assert job.status is Status.CANCELLED
    assert "was cancelled" in (bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "").text or "")
    assert bot.fake.completed_uploads() == []


async def test_upscale_survives_a_killed_generator_and_replies_once_in_the_thread(
    bot: SlackBot, start_generator: Callable[..., Generator]
) -> None:
    """pick → ⬆ Upscale → the generator dies mid-upscale → another draws it again → one 4× picture,
    posted in the thread of the message whose ⬆ was clicked."""
    first = start_generator(worker_id="gen-doomed", lease_seconds=1.0)
    await bot.slack.send_slash_command("/imagine", "a harbour --images 2 --seed 3", channel_id=CHANNEL)
    grid = await delivered(bot, 1)
    await bot.slack.send_block_action(
        "imagine:pick:1:1", channel_id=CHANNEL, message_ts=str(grid.refs.extra["buttons_ts"]), user_id=USER
    )
    await created(bot, 2)
    pick = await delivered(bot, 2)
    pick_buttons = bot.fake.message(CHANNEL, str(pick.refs.extra["buttons_ts"]))
    action_ids = [b["action_id"] for b in iter_actions(pick_buttons.blocks)]
    assert action_ids == [
        "imagine:variation:2:0",
        "imagine:upscale:2:0",
        "imagine:reroll:2",
        "imagine:info:2",
    ]

    click = await bot.slack.send_block_action(
        "imagine:upscale:2:0", channel_id=CHANNEL, message_ts=pick_buttons.ts, user_id=USER
    )
    assert click.status == 200 and click.elapsed < 3.0
    await created(bot, 3)
    await _wait(bot, 3, lambda j: j.status is Status.RUNNING and j.progress > 0, "upscaling")
    await first.kill()  # mid-upscale: the lease is held by a dead process

    start_generator(worker_id="gen-2")
    job = await delivered(bot, 3)
    assert (job.kind, job.status, job.attempts, job.parent_job_id) == ("upscale", Status.DONE, 2, 2)
    [upload] = [u for u in bot.fake.completed_uploads(CHANNEL) if u.file_id == job.refs.extra["grid_file_id"]]
    assert upload.content is not None and png_size(upload.content) == (4 * TINY_PICTURE_SIZE,) * 2
    assert upload.thread_ts == pick_buttons.ts  # a reply to the picked image
    assert len(bot.fake.completed_uploads(CHANNEL)) == 3  # grid, pick, upscale: each once
    [buttons] = [m for m in bot.fake.messages_in(CHANNEL) if m.ts == job.refs.extra["buttons_ts"]]
    assert buttons.thread_ts == pick_buttons.ts
    assert [b["action_id"] for b in iter_actions(buttons.blocks)] == ["imagine:info:3"]
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert placeholder.thread_ts == pick_buttons.ts
    texts = [version["text"] for version in placeholder.history] + [placeholder.text]
    assert any("Drawing" in (text or "") for text in texts) and texts[-1].startswith("✅"), texts
