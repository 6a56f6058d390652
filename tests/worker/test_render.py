"""The render loop in-process, on real SQLite and Postgres with a tiny checkpoint: end to end, shared and
continuous batching, cancellation, retries, out-of-memory halving, variations and picks."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from generator.engine import ModelEngine
from generator.model.dalle import DalleMini
from generator.model.grid import GUTTER, grid_shape
from generator.scheduler import RENDER_FAILED_REASON, VARIATION_PREFIX_ROWS, Batching
from generator.serve import load_model
from generator.testing import tiny_settings
from jobs.models import GRID_INDEX, EnqueueRequest, Kind, Status, utcnow
from jobs.options import JobOptions
from jobs.queue import Queue
from tests.fakes.poster import RecordingPoster
from tests.worker.harness import FaultyEngine, InjectedOutOfMemory, make_generator, wait_until

pytestmark = pytest.mark.timeout(90)
# Tests of the loop's own logic (not of the database) run on SQLite only, to keep the suite short.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def request(prompt: str = "a cat", user: str = "u1", **options: object) -> EnqueueRequest:
    return EnqueueRequest(platform="cli", user_id=user, prompt=prompt, options=options)


def tokens_of(png_tokens: bytes | None) -> np.ndarray:
    assert png_tokens is not None
    return np.frombuffer(png_tokens, dtype="<u2")


async def delivered(queue: Queue, job_ids: list[int]) -> bool:
    jobs = [await queue.get_job(job_id) for job_id in job_ids]
    return all(job.delivery.value == "delivered" for job in jobs)


async def test_prompts_in_grids_out(queue: Queue, tiny_model: DalleMini, running) -> None:
    chat = RecordingPoster()
    generator = make_generator(
        queue,
        ModelEngine(tiny_model, capacity=4, model_name="tiny"),
        posters={"cli": chat},
    )
    asks = [("a cat", 1), ("a fox in the snow", 2), ("a cat", 3), ("pixel art of a castle", 5)]
    ids = [(await queue.enqueue(request(prompt, images=n, seed=7))).job.id for prompt, n in asks]
    await running(generator.worker)
    await wait_until(lambda: delivered(queue, ids), what="every job delivered")

    side = tiny_model.vqgan.config.resolution
    for job_id, (_, count) in zip(ids, asks, strict=True):
        job = await queue.get_job(job_id)
        assert job.status is Status.DONE and job.attempts == 1
        assert job.gpu_seconds is not None and job.gpu_seconds > 0
        stored = {image.index: image for image in await queue.images(job_id)}
        assert sorted(stored) == [GRID_INDEX, *range(count)]
        columns, rows = grid_shape(count)
        grid = Image.open(io.BytesIO(stored[GRID_INDEX].png))
        assert grid.size == (columns * side + (columns + 1) * GUTTER, rows * side + (rows + 1) * GUTTER)
        assert all(tokens_of(stored[i].tokens).shape == (256,) for i in range(count))
        assert chat.messages[job_id].grid_png == stored[GRID_INDEX].png
    assert sorted(chat.job_ids_posted()) == sorted(ids)  # once each

    # Reproducible: the same prompt and seed draw the same codes, whatever else shares the batch,
    # and the same as the model's own one-shot API.
    first, third = await queue.images(ids[0]), await queue.images(ids[2])
    expected = tiny_model.tokens(["a cat"], JobOptions(images=3, seed=7))[0].numpy()
    assert (tokens_of(first[1].tokens) == tokens_of(third[1].tokens)).all()
    assert (tokens_of(third[3].tokens) == expected[2]).all()
    # a 5-image job is bigger than the batch (4): it was split, not starved
    workers = {w.worker_id: w for w in await queue.workers_alive()}
    assert workers["w-test"].batch_images == 4
    assert workers["w-test"].jobs_done == 4 and workers["w-test"].images_done == 11


@sqlite_only
async def test_the_fast_cpu_mode_is_picked_from_settings_logged_and_renders(
    queue: Queue,
    tiny_checkpoints: tuple[Path, Path],
    tmp_path: Path,
    running,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = tiny_settings(tmp_path, tiny_checkpoints, decoder_weights="int8", vqgan_dtype="bfloat16")
    with caplog.at_level(logging.INFO, logger="generator.model.dalle"):
        loaded = await asyncio.to_thread(load_model, settings)
    assert "float32 weights (int8 decoder weights), VQGAN in bfloat16" in caplog.text
    model = loaded.model
    chat = RecordingPoster()
    generator = make_generator(
        queue, ModelEngine(model, capacity=4, model_name="tiny"), posters={"cli": chat}
    )
    asks = [("a cat", 1), ("a fox in the snow", 3)]  # 2 sequences: int8 kernel; 8: the bfloat16 copy
    ids = [(await queue.enqueue(request(prompt, images=n, seed=7))).job.id for prompt, n in asks]
    await running(generator.worker)
    await wait_until(lambda: delivered(queue, ids), what="every job delivered")

    side = model.vqgan.config.resolution
    for job_id, (_, count) in zip(ids, asks, strict=True):
        job = await queue.get_job(job_id)
        assert job.status is Status.DONE
        stored = {image.index: image for image in await queue.images(job_id)}
        columns, rows = grid_shape(count)
        grid = Image.open(io.BytesIO(stored[GRID_INDEX].png))
        assert grid.size == (columns * side + (columns + 1) * GUTTER, rows * side + (rows + 1) * GUTTER)
        assert np.asarray(grid).std() > 0  # a picture, not a blank
        assert all(int(tokens_of(stored[i].tokens).max()) < model.code_count for i in range(count))
        assert chat.messages[job_id].grid_png == stored[GRID_INDEX].png


@sqlite_only
@pytest.mark.parametrize("batching", [Batching.CONTINUOUS, Batching.BATCH])
async def test_a_job_arriving_mid_batch(
    queue: Queue, tiny_model: DalleMini, running, batching: Batching
) -> None:
    """Continuous batching: the newcomer starts while the first job is still drawing; batch-at-a-time
    makes it wait for the end of the batch."""
    engine = FaultyEngine(
        ModelEngine(tiny_model, capacity=8, model_name="tiny"),
        error=RuntimeError(),
        failures=0,
        step_delay=0.002,
    )
    generator = make_generator(queue, engine, posters={}, batching=batching, deliver=False)
    first_drawing_at_second_start: dict[int, bool] = {}  # job id → was the first job still being drawn?
    generator.render.on_first_token = lambda job_id: first_drawing_at_second_start.setdefault(
        job_id, first in generator.render.active
    )
    first = (await queue.enqueue(request("a cat", images=2, seed=1))).job.id
    await running(generator.worker)

    async def first_is_halfway() -> bool:
        active = generator.render.active.get(first)
        return active is not None and generator.render.progress(active) > 0.3

    await wait_until(first_is_halfway, what="the first job half drawn")
    second = (await queue.enqueue(request("a dog", user="u2", images=2, seed=2))).job.id
    await wait_until(lambda: _done(queue, [first, second]), what="both jobs done")
    a, b = await queue.get_job(first), await queue.get_job(second)
    assert a.finished_at is not None and b.started_at is not None
    if batching is Batching.CONTINUOUS:
        assert first_drawing_at_second_start[second] is True
        assert b.started_at < a.finished_at
    else:  # it waited until the first job's last token
        assert first_drawing_at_second_start[second] is False


async def _done(queue: Queue, ids: list[int]) -> bool:
    jobs = [await queue.get_job(job_id) for job_id in ids]
    return all(job.status is Status.DONE for job in jobs)


async def test_cancel_mid_batch(queue: Queue, tiny_model: DalleMini, running) -> None:
    engine = FaultyEngine(
        ModelEngine(tiny_model, capacity=8, model_name="tiny"),
        error=RuntimeError(),
        failures=0,
        step_delay=0.002,
    )
    chat = RecordingPoster()
    generator = make_generator(queue, engine, posters={"cli": chat})
    kept = (await queue.enqueue(request("a cat", images=2, seed=1))).job.id
    doomed = (await queue.enqueue(request("a dog", user="u2", images=2, seed=2))).job.id
    await running(generator.worker)

    async def running_with_progress() -> bool:
        job = await queue.get_job(doomed)
        return job.status is Status.RUNNING and job.progress > 0.05

    await wait_until(running_with_progress, what="the job to cancel is being drawn")
    await queue.cancel(doomed, "u2")
    await wait_until(lambda: delivered(queue, [kept, doomed]), what="both delivered")
    assert (await queue.get_job(doomed)).status is Status.CANCELLED
    assert (await queue.get_job(kept)).status is Status.DONE
    assert await queue.images(doomed) == []
    assert (chat.messages[doomed].failure or "").startswith("cancelled")


async def test_render_error_is_retried_then_fails_with_a_reason(
    make_queue, tiny_model: DalleMini, running
) -> None:
    queue = make_queue(max_attempts=2)
    engine = FaultyEngine(
        ModelEngine(tiny_model, capacity=4, model_name="tiny"),
        error=RuntimeError("injected: CUDA error: an illegal memory access"),
        failures=99,
    )
    chat = RecordingPoster()
    generator = make_generator(queue, engine, posters={"cli": chat})
    job_id = (await queue.enqueue(request(images=2, seed=3))).job.id
    await running(generator.worker)
    await wait_until(lambda: delivered(queue, [job_id]), what="the failure delivered")
    job = await queue.get_job(job_id)
    assert job.status is Status.FAILED and job.attempts == 2
    assert job.error == RENDER_FAILED_REASON
    assert job.error_detail is not None and "illegal memory access" in job.error_detail
    assert chat.messages[job_id].failure == "failed: " + RENDER_FAILED_REASON


@sqlite_only
async def test_out_of_memory_halves_the_batch(queue: Queue, tiny_model: DalleMini, running) -> None:
    engine = FaultyEngine(
        ModelEngine(tiny_model, capacity=4, model_name="tiny"),
        error=InjectedOutOfMemory("CUDA out of memory"),
        failures=1,
        rows_over=2,
    )
    generator = make_generator(
        queue, engine, posters={}, deliver=False, out_of_memory_errors=(InjectedOutOfMemory,)
    )
    job_id = (await queue.enqueue(request(images=4, seed=5))).job.id
    await running(generator.worker)
    await wait_until(lambda: _done(queue, [job_id]), what="the job done after halving")
    assert engine.resized_to == [2]
    job = await queue.get_job(job_id)
    assert job.attempts == 1  # not counted as a failure
    stored = [
        tokens_of(image.tokens)
        for image in sorted(await queue.images(job_id), key=lambda i: i.index)
        if image.index != GRID_INDEX
    ]
    expected = tiny_model.tokens(["a cat"], JobOptions(images=4, seed=5))[0].numpy()
    assert all((codes == expected[i]).all() for i, codes in enumerate(stored))  # the same pictures


@sqlite_only
async def test_variation_keeps_the_top_rows_and_pick_is_delivered(
    queue: Queue, tiny_model: DalleMini, running
) -> None:
    chat = RecordingPoster()
    generator = make_generator(
        queue,
        ModelEngine(tiny_model, capacity=4, model_name="tiny"),
        posters={"cli": chat},
    )
    parent = (await queue.enqueue(request(images=2, seed=11))).job.id
    await running(generator.worker)
    await wait_until(lambda: _done(queue, [parent]), what="the parent done")
    variation = (
        await queue.enqueue(
            EnqueueRequest(
                platform="cli",
                user_id="u1",
                prompt="",
                kind=Kind.VARIATION,
                parent_job_id=parent,
                image_index=1,
                options={"seed": 99},
            )
        )
    ).job.id
    pick = (
        await queue.enqueue(
            EnqueueRequest(
                platform="cli", user_id="u1", prompt="", kind=Kind.PICK, parent_job_id=parent, image_index=0
            )
        )
    ).job.id
    await wait_until(lambda: delivered(queue, [parent, variation, pick]), what="all delivered")
    picked = tokens_of((await queue.image(parent, 1)).tokens)
    kept = VARIATION_PREFIX_ROWS * 16
    for image in await queue.images(variation):
        if image.index != GRID_INDEX:
            codes = tokens_of(image.tokens)
            assert (codes[:kept] == picked[:kept]).all()
            assert not (codes[kept:] == picked[kept:]).all()
    assert chat.messages[pick].grid_png == (await queue.image(parent, 0)).png


@sqlite_only
@pytest.mark.parametrize("grace", [0.0, 30.0])
async def test_stop_finishes_what_can_finish_and_releases_the_rest(
    queue: Queue, tiny_model: DalleMini, grace: float
) -> None:
    engine = FaultyEngine(
        ModelEngine(tiny_model, capacity=2, model_name="tiny"),
        error=RuntimeError(),
        failures=0,
        step_delay=0.002,
    )
    generator = make_generator(queue, engine, posters={}, deliver=False, stop_grace_seconds=grace)
    drawing = (await queue.enqueue(request("a cat", images=2, seed=1))).job.id
    waiting = (await queue.enqueue(request("a dog", user="u2", images=2, seed=2))).job.id
    stop = asyncio.Event()
    task = asyncio.create_task(generator.worker.run(stop))

    async def halfway() -> bool:
        active = generator.render.active.get(drawing)
        return active is not None and generator.render.progress(active) > 0.2

    await wait_until(halfway, what="the first job drawn in part")
    stop.set()
    await asyncio.wait_for(task, 30)
    first, second = await queue.get_job(drawing), await queue.get_job(waiting)
    if grace:  # it could finish within the grace period: finished
        assert first.status is Status.DONE
    else:  # released, the attempt not counted
        assert first.status is Status.QUEUED and first.attempts == 0
    assert second.status is Status.QUEUED and second.attempts == 0  # claimed? then released too


ARRIVAL_AHEAD_S = 0.5  # within the generator's liveness (two 0.5 s heartbeats + 1 s), beyond 3 enqueues


@sqlite_only
async def test_the_eta_is_within_half_of_the_real_wait_at_a_known_render_rate(
    queue: Queue, tiny_model: DalleMini, running
) -> None:
    """The generator measures its rate over the time it spends drawing, so an idle spell before the jobs
    arrive changes nothing (an average over wall time would then promise far too late); the ETA a job
    gets is within ±50 % of its real wait, and it goes down while the job waits."""
    engine = FaultyEngine(  # a "GPU" of known speed: 256 steps of 4 ms for a batch of 2 images
        ModelEngine(tiny_model, capacity=2, model_name="tiny"),
        error=RuntimeError(),
        failures=0,
        step_delay=0.004,
    )
    await running(make_generator(queue, engine, posters={"cli": RecordingPoster()}).worker)
    warm_up = (await queue.enqueue(request("a warm up", images=2, seed=1))).job.id
    await wait_until(lambda: _done(queue, [warm_up]), what="the warm-up job (the rate measured)")
    await asyncio.sleep(2.0)  # idle, as long as a batch takes

    # The three jobs arrive together, at a moment just ahead that no claim can take early (run_after): a
    # claim between two enqueues made the last job second, not third, on a loaded machine
    arrival, asked = utcnow() + timedelta(seconds=ARRIVAL_AHEAD_S), time.monotonic() + ARRIVAL_AHEAD_S
    for user in range(2):
        await queue.enqueue(request(f"a fox {user}", user=f"u{user}", images=2, seed=user), now=arrival)
    target = await queue.enqueue(request("the last fox", user="u9", images=2, seed=9), now=arrival)
    assert target.position == 3 and target.eta is not None
    await asyncio.sleep(asked + 1.0 - time.monotonic())
    _, later_eta = await queue.position(target.job.id)
    await wait_until(lambda: _done(queue, [target.job.id]), what="the job waited for")
    waited = time.monotonic() - asked

    promised = target.eta.total_seconds()
    assert 0.5 * waited <= promised <= 1.5 * waited, (promised, waited)
    assert later_eta is not None and later_eta < target.eta  # counting down, not up


async def _listening(db_url: str, *, terminate: bool = False) -> int:
    """How many LISTEN connections the generator has open on this database (or killed, `terminate`)."""
    admin = await asyncpg.connect(make_url(db_url).set(drivername="postgresql").render_as_string(False))
    try:
        pid = "pg_terminate_backend(pid)" if terminate else "pid"
        return int(
            await admin.fetchval(
                f"SELECT count({pid}) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await admin.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_cut_listen_connection_is_noticed_and_listened_again(
    queue: Queue, db_url: str, tiny_model: DalleMini, running, caplog: pytest.LogCaptureFixture
) -> None:
    """Polling is set to 30 s here, so only a NOTIFY can start the job in time."""
    generator = make_generator(
        queue,
        ModelEngine(tiny_model, capacity=4, model_name="tiny"),
        posters={"cli": RecordingPoster()},
        idle_poll_seconds=30.0,
    )
    caplog.set_level(logging.WARNING, logger="generator.worker")
    await running(generator.worker)
    await wait_until(lambda: _is(_listening(db_url), 1), what="the generator listening")
    assert await _listening(db_url, terminate=True) == 1  # a server restart, a proxy dropping it
    await wait_until(
        lambda: _true(any(getattr(r, "action", "") == "listen_lost" for r in caplog.records)),
        timeout=5,
        what="the loss logged",
    )
    await wait_until(lambda: _is(_listening(db_url), 1), timeout=5, what="listening again")
    job_id = (await queue.enqueue(request(images=1, seed=2))).job.id
    asked = time.monotonic()
    await wait_until(lambda: _started(queue, job_id), timeout=10, what="the job claimed")
    assert time.monotonic() - asked < 5  # woken by its NOTIFY, not by the 30 s poll


async def _is(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


async def _true(value: bool) -> bool:
    return value


async def _started(queue: Queue, job_id: int) -> bool:
    return (await queue.get_job(job_id)).status is not Status.QUEUED
