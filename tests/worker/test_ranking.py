"""CLIP ranking and oversampling in the render loop (tiny checkpoints, real SQLite): the stored scores are
transformers' own CLIP scores of the stored pictures, the grid is ordered by them, and with k candidates
per image the shown pictures are the best N of the k×N drawn, every one of them counted."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generator.engine import ModelEngine
from generator.model.clip import ClipRanker
from generator.model.dalle import DalleMini
from generator.model.grid import make_grid
from generator.testing import tiny_extras
from jobs.errors import QuotaExceeded
from jobs.models import GRID_INDEX, EnqueueRequest, Kind
from jobs.options import JobOptions
from jobs.queue import Queue
from tests.fakes.poster import RecordingPoster
from tests.worker.harness import FaultyEngine, make_generator, wait_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

PROMPT = "A Fox in the SNOW, at dawn"  # scored as typed (the sampler sees the normalized prompt)


def transformers_scores(clip_dir: Path, images: list[Image.Image], prompt: str) -> list[float]:
    """CLIP similarities computed with transformers' CLIPModel + CLIPProcessor alone."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(clip_dir))
    with torch.inference_mode():
        inputs = processor(text=[prompt], images=images, return_tensors="pt", padding=True, truncation=True)
        output = model(**inputs)
        return (output.logits_per_image[:, 0] / model.logit_scale.exp()).tolist()


def pictures(stored: list) -> dict[int, Image.Image]:
    return {image.index: Image.open(io.BytesIO(image.png)).convert("RGB") for image in stored}


async def render(queue: Queue, tiny_model: DalleMini, clip_dir: Path, running, images: int, seed: int) -> int:
    generator = make_generator(
        queue,
        ModelEngine(tiny_model, capacity=8, model_name="tiny"),
        posters={"cli": RecordingPoster()},
        ranker=ClipRanker.load(clip_dir),
    )
    enqueued = await queue.enqueue(
        EnqueueRequest(platform="cli", user_id="u1", prompt=PROMPT, options={"images": images, "seed": seed})
    )
    await running(generator.worker)

    async def delivered() -> bool:
        return (await queue.get_job(enqueued.job.id)).delivery.value == "delivered"

    await wait_until(delivered, what="the job delivered")
    return enqueued.job.id


async def test_the_grid_is_ordered_by_clip_scores(
    queue: Queue, tiny_model: DalleMini, tiny_checkpoints: tuple[Path, Path], running
) -> None:
    clip_dir = tiny_extras(tiny_checkpoints[0])[0]
    job_id = await render(queue, tiny_model, clip_dir, running, images=5, seed=11)
    stored = await queue.images(job_id)
    shown = pictures(stored)
    scores = [image.score for image in stored if image.index != GRID_INDEX]
    expected = transformers_scores(clip_dir, [shown[i] for i in range(5)], PROMPT)
    assert scores == pytest.approx(expected, abs=1e-5)
    assert scores == sorted(scores, reverse=True)  # best first
    assert np.array_equal(np.asarray(shown[GRID_INDEX]), np.asarray(make_grid([shown[i] for i in range(5)])))
    job = await queue.get_job(job_id)
    assert (job.candidates, job.quota_images) == (1, 5)  # the CPU default: rank only
    assert await queue.image_scores(job_id) == dict(enumerate(scores))


async def test_two_candidates_per_image_show_the_best_half(
    queue: Queue, tiny_model: DalleMini, tiny_checkpoints: tuple[Path, Path], running
) -> None:
    clip_dir = tiny_extras(tiny_checkpoints[0])[0]
    await queue.update_settings("cli", "", candidates_per_image=2, daily_quota_images=10)
    job_id = await render(queue, tiny_model, clip_dir, running, images=3, seed=5)

    # every candidate the generator drew: image i of the 6 is seed 5 + i, as for a 6-image job
    drawn_tokens = tiny_model.tokens([PROMPT], JobOptions(images=6, seed=5))[0]
    drawn = tiny_model.decode(drawn_tokens)
    scores = transformers_scores(clip_dir, drawn, PROMPT)
    best = sorted(range(6), key=lambda i: -scores[i])[:3]

    stored = {image.index: image for image in await queue.images(job_id)}
    shown = pictures(list(stored.values()))
    for place, candidate in enumerate(best):
        assert np.array_equal(np.asarray(shown[place]), np.asarray(drawn[candidate]))
        assert np.array_equal(
            np.frombuffer(stored[place].tokens or b"", "<u2"), drawn_tokens[candidate].numpy()
        )
        assert stored[place].score == pytest.approx(scores[candidate], abs=1e-5)
    job = await queue.get_job(job_id)
    assert (job.images, job.candidates, job.quota_images) == (3, 2, 6)  # the quota counts all 6 drawn
    # 6 of today's 10 are used: another 3 × 2 does not fit, a reroll follows the same rule
    with pytest.raises(QuotaExceeded, match="used 6 of your 10 images for today and asked for 6"):
        await queue.enqueue(
            EnqueueRequest(platform="cli", user_id="u1", prompt="", kind=Kind.REROLL, parent_job_id=job_id)
        )


@pytest.mark.parametrize("previews", [False, True])
async def test_previews_off_means_no_decode_while_sampling(
    queue: Queue, tiny_model: DalleMini, running, previews: bool
) -> None:
    engine = FaultyEngine(
        ModelEngine(tiny_model, capacity=8, model_name="tiny"), error=RuntimeError("never"), failures=0
    )
    shown: list[bytes] = []
    generator = make_generator(queue, engine, posters={"cli": RecordingPoster()}, previews=previews)
    generator.render.on_preview = lambda job, png: shown.append(png)
    enqueued = await queue.enqueue(
        EnqueueRequest(platform="cli", user_id="u1", prompt=PROMPT, options={"images": 3, "seed": 1})
    )
    await running(generator.worker)

    async def delivered() -> bool:
        return (await queue.get_job(enqueued.job.id)).delivery.value == "delivered"

    await wait_until(delivered, what="the job delivered")
    if previews:  # a preview per quarter reached (at most 3 of them), each decoding the 3 images
        assert 1 <= len(shown) <= 3 and engine.decoded == 3 + 3 * len(shown)
    else:  # the finished grid's decode alone
        assert shown == [] and engine.decoded == 3
