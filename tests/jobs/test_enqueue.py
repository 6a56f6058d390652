"""enqueue: every refusal is its own exception with a clear reason and writes nothing; fairness."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs import errors
from jobs.models import Kind, Status
from jobs.queue import Queue
from tests.jobs.factories import count_jobs, rendered, request

BAD_PROMPTS = [
    ("", errors.EmptyPrompt, "empty"),
    ("   \n\t  ", errors.EmptyPrompt, "empty"),
    ("x" * 301, errors.PromptTooLong, "301 characters long; the limit is 300"),
    ("a cat\x07 bell", errors.ControlCharacters, "U+0007"),
    ("a cat\x1b[31m", errors.ControlCharacters, "control characters"),
    ("a \x00 cat", errors.NulCharacter, "NUL"),
    ("🐱🎩", errors.NoWords, "no letters or digits"),
    ("🐱 ✨ !!! …", errors.NoWords, "emoji"),
]

BAD_OPTIONS: list[tuple[dict[str, Any], type[errors.Refused], str]] = [
    ({"size": 512}, errors.UnknownOption, "unknown option 'size'"),
    ({"images": 0}, errors.ImagesOutOfRange, "from 1 to 9, got 0"),
    ({"images": 10}, errors.ImagesOutOfRange, "from 1 to 9, got 10"),
    ({"images": "lots"}, errors.ImagesOutOfRange, "whole number"),
    ({"seed": -1}, errors.NegativeSeed, "0 or more, got -1"),
    ({"top_k": 0}, errors.BadOption, "top_k"),
    ({"top_p": 1.5}, errors.BadOption, "top_p"),
    ({"temperature": "hot"}, errors.BadOption, "temperature"),
    ({"guidance_scale": float("nan")}, errors.BadOption, "guidance_scale"),
]


@pytest.mark.parametrize(("prompt", "error", "words"), BAD_PROMPTS)
async def test_bad_prompt_is_refused_and_nothing_written(
    queue: Queue, engine: AsyncEngine, prompt: str, error: type[errors.Refused], words: str
) -> None:
    with pytest.raises(error) as caught:
        await queue.enqueue(request(prompt))
    assert type(caught.value) is error
    assert words in caught.value.reason
    assert await count_jobs(engine) == 0


@pytest.mark.parametrize(("options", "error", "words"), BAD_OPTIONS)
async def test_bad_option_is_refused_and_nothing_written(
    queue: Queue, engine: AsyncEngine, options: dict[str, Any], error: type[errors.Refused], words: str
) -> None:
    with pytest.raises(error) as caught:
        await queue.enqueue(request(options=options))
    assert type(caught.value) is error
    assert words in caught.value.reason
    assert await count_jobs(engine) == 0


BAD_REQUESTERS = {
    "user id too long": ({"user": "u" * 65}, "the user id is 65 characters long; the most is 64"),
    "user name too long": ({"user_name": "n" * 500}, "the user name is 500 characters long"),
    "guild id too long": ({"guild_id": "g" * 65}, "the guild id is 65 characters long"),
    "channel id too long": ({"channel_id": "c" * 65}, "the channel id is 65 characters long"),
    "empty user id": ({"user": " "}, "a request needs a user id"),
}


@pytest.mark.parametrize("case", BAD_REQUESTERS)
async def test_requesters_that_do_not_fit_are_refused_alike_on_both_engines(
    queue: Queue, engine: AsyncEngine, case: str
) -> None:
    """SQLite would store 500 characters in a 64-character column; Postgres would raise. Both refuse."""
    fields, words = BAD_REQUESTERS[case]
    with pytest.raises(errors.BadRequester) as caught:
        await queue.enqueue(request(**fields))
    assert words in caught.value.reason
    assert await count_jobs(engine) == 0
    await queue.enqueue(request(user="u" * 64, user_name="n" * 64))  # exactly at the limits: taken


async def test_banned_user_here_or_everywhere(queue: Queue, engine: AsyncEngine) -> None:
    await queue.ban("discord", "mallory", guild_id="g1", reason="spam", banned_by="admin")
    with pytest.raises(errors.Banned, match="banned"):
        await queue.enqueue(request(user="mallory"))
    await queue.enqueue(request(user="mallory", guild_id="g2"))  # other guild: fine
    await queue.ban("discord", "mallory", reason="spam everywhere")
    with pytest.raises(errors.Banned):
        await queue.enqueue(request(user="mallory", guild_id="g2"))
    assert await count_jobs(engine) == 1
    assert await queue.unban("discord", "mallory", guild_id="g1")
    assert [ban.guild_id for ban in await queue.bans("discord", "g2")] == [""]


async def test_blocked_word_is_whole_word_any_case(queue: Queue, engine: AsyncEngine) -> None:
    await queue.update_settings("discord", "g1", blocked_words=["gore", "bad word"])
    for prompt in ("lots of GORE here", "Gore.", "a Bad  Word", "bad word!"):
        with pytest.raises(errors.BlockedWord) as caught:
            await queue.enqueue(request(prompt))
        assert "rephrase" in caught.value.reason
    assert await count_jobs(engine) == 0
    await queue.enqueue(request("a gorey gorge of badwords"))  # not whole words
    await queue.enqueue(request("gore", guild_id="g2"))  # another guild's list
    assert await count_jobs(engine) == 2


async def test_channel_allow_list(queue: Queue, engine: AsyncEngine) -> None:
    await queue.update_settings("discord", "g1", allowed_channels=["c2", "c3"])
    with pytest.raises(errors.ChannelNotAllowed, match="c2, c3"):
        await queue.enqueue(request(channel_id="c1"))
    assert await count_jobs(engine) == 0
    await queue.enqueue(request(channel_id="c3"))
    assert await count_jobs(engine) == 1


async def test_queued_cap_global_and_per_guild(make_queue: Callable[..., Queue], engine: AsyncEngine) -> None:
    queue = make_queue(max_queued_per_user=2)
    await queue.enqueue(request())
    await queue.enqueue(request())
    with pytest.raises(errors.TooManyQueued, match="2 prompts waiting"):
        await queue.enqueue(request())
    await queue.enqueue(request(user="bob"))  # caps are per user
    await queue.update_settings("discord", "g1", max_queued_per_user=3)
    await queue.enqueue(request())
    with pytest.raises(errors.TooManyQueued, match="3 prompts"):
        await queue.enqueue(request())
    assert await count_jobs(engine) == 4


async def test_running_cap(make_queue: Callable[..., Queue], engine: AsyncEngine) -> None:
    queue = make_queue(max_running_per_user=1)
    await queue.enqueue(request())
    await queue.claim("w", 9)
    with pytest.raises(errors.TooManyRunning, match="wait for one to finish"):
        await queue.enqueue(request())
    assert await count_jobs(engine) == 1


async def test_daily_quota_counts_images_and_resets_at_utc_midnight(
    make_queue: Callable[..., Queue], engine: AsyncEngine
) -> None:
    queue = make_queue(daily_quota_images=10)
    now = datetime(2026, 3, 1, 21, 30, tzinfo=UTC)
    await queue.enqueue(request(options={"images": 9}), now=now)
    with pytest.raises(errors.QuotaExceeded) as caught:
        await queue.enqueue(request(options={"images": 2}), now=now)
    assert caught.value.resets_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert "used 9 of your 10 images" in caught.value.reason and "in 2 h 30 min" in caught.value.reason
    assert await count_jobs(engine) == 1
    await queue.enqueue(request(options={"images": 1}), now=now)  # exactly at the quota
    await queue.enqueue(request(options={"images": 4}), now=now + timedelta(hours=3))  # next UTC day
    # a job cancelled before it started gives its images back
    job = (await queue.enqueue(request(user="bob", options={"images": 9}), now=now)).job
    await queue.cancel(job.id, "bob", now=now)
    await queue.enqueue(request(user="bob", options={"images": 9}), now=now)


async def test_guild_quota_overrides_default(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(daily_quota_images=100)
    await queue.update_settings("discord", "g1", daily_quota_images=4)
    await queue.enqueue(request())
    with pytest.raises(errors.QuotaExceeded):
        await queue.enqueue(request(options={"images": 1}))


async def test_enqueue_stores_request_and_answers_position(queue: Queue) -> None:
    first = await queue.enqueue(request("  a   cat\n in a hat ", options={"images": "3", "seed": 42}))
    job = first.job
    assert (job.prompt, job.prompt_normalized) == ("  a   cat\n in a hat ", "a cat in a hat")
    assert (job.options.images, job.options.seed, job.options.guidance_scale) == (3, 42, 10.0)
    assert (job.status, job.kind, job.attempts, job.platform, job.guild_id) == (
        Status.QUEUED,
        Kind.IMAGINE,
        0,
        "discord",
        "g1",
    )
    assert job.created_at.tzinfo is not None
    assert (first.position, first.eta) == (1, None)  # no render history: no ETA yet
    second = await queue.enqueue(request(user="bob"))
    assert second.position == 2
    assert (await queue.enqueue(request())).job.options.seed >= 0  # random seed drawn


async def test_fairness_one_job_is_not_starved_by_500(queue: Queue) -> None:
    for _ in range(500):
        await queue.enqueue(request(user="alice"))
    bob = (await queue.enqueue(request(user="bob"))).job
    claimed = [job.id for _ in range(2) for job in await queue.claim("w", 4)]
    assert bob.id in claimed


async def test_fairness_interleaves_and_honours_weights(queue: Queue) -> None:
    await queue.set_weight("discord", "carol", 2.0)
    for _ in range(6):
        await queue.enqueue(request(user="alice", options={"images": 1}))
    for _ in range(6):
        await queue.enqueue(request(user="carol", options={"images": 1}))
    users = [job.user_id for _ in range(9) for job in await queue.claim("w", 1)]
    # carol (weight 2) gets about twice alice's share once both are queued
    assert users.count("carol") >= 5 and users.count("alice") >= 3


async def test_claim_budget_counts_images_in_fair_order(queue: Queue) -> None:
    for images in (3, 3, 2, 9):
        await queue.enqueue(request(user=f"u{images}{_counter()}", options={"images": images}))
    assert [job.images for job in await queue.claim("w", 8)] == [3, 3, 2]
    assert [job.images for job in await queue.claim("w", 4)] == [9]  # too big alone: still taken


_count = iter(range(10**6))


def _counter() -> int:
    return next(_count)


async def test_reroll_variation_and_pick(queue: Queue) -> None:
    parent = (
        await queue.enqueue(request(" a cat  in a hat", options={"images": 2, "seed": 7, "top_k": 64}))
    ).job
    with pytest.raises(errors.BadParent, match="no images yet"):
        await queue.enqueue(request("", kind=Kind.VARIATION, parent_job_id=parent.id, image_index=0))
    [claimed] = await queue.claim("w", 9)
    await queue.finish(claimed.id, "w", grid_png=b"grid", images=rendered(2), gpu_seconds=1.0)
    reroll = (await queue.enqueue(request("", kind=Kind.REROLL, parent_job_id=parent.id))).job
    assert (reroll.prompt, reroll.options.top_k, reroll.parent_job_id) == ("a cat in a hat", 64, parent.id)
    assert reroll.prompt_normalized == "a cat in a hat" and reroll.options.seed != 7
    variation = (
        await queue.enqueue(request("", kind=Kind.VARIATION, parent_job_id=parent.id, image_index=1))
    ).job
    assert (variation.image_index, variation.options.images) == (1, 2)
    with pytest.raises(errors.BadParent, match="not 2"):
        await queue.enqueue(request("", kind=Kind.PICK, parent_job_id=parent.id, image_index=2))
    with pytest.raises(errors.BadParent, match="does not exist"):
        await queue.enqueue(request("", kind=Kind.REROLL, parent_job_id=999))
    pick = (await queue.enqueue(request("", kind=Kind.PICK, parent_job_id=parent.id, image_index=1))).job
    assert pick.status is Status.DONE
    images = await queue.images(pick.id)
    png = b"\x89PNG image 1"
    assert [(image.index, image.png) for image in images] == [(-1, png), (0, png)]
    assert [job.id for job in await queue.claim("w", 9)] == [reroll.id, variation.id]  # never the pick


async def test_concurrent_enqueues_respect_the_cap_exactly(
    make_queue: Callable[..., Queue], engine: AsyncEngine
) -> None:
    """The user's fairness row is locked first, so racing enqueues cannot all pass the cap check."""
    queue = make_queue(max_queued_per_user=3)
    results = await asyncio.gather(
        *(queue.enqueue(request(f"cat {n}")) for n in range(8)), return_exceptions=True
    )
    refused = [result for result in results if isinstance(result, errors.TooManyQueued)]
    assert len(refused) == 5 and await count_jobs(engine) == 3
    tags = sorted(result.job.fair_tag for result in results if not isinstance(result, BaseException))
    assert tags == [0.0, 4.0, 8.0]  # each saw the one before it
