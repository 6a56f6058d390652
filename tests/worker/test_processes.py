"""Real generator processes against real databases: SIGKILL mid-batch and between render and delivery,
SIGTERM, a model that cannot load, two generators sharing 50 jobs fairly, Postgres connections dropped
under a running generator, and the `imagine "prompt"` command on the embedded SQLite default.

The jobs are Slack jobs, posted by the generators' real SlackPoster to a fake Slack on 127.0.0.1: a job
posted twice is a grid uploaded twice."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from generator.serve import ModelLoadError
from generator.testing import make_tiny_upscaler
from jobs.errors import DatabaseUnavailable
from jobs.models import EnqueueRequest, Job, Kind, Status
from jobs.queue import Queue
from tests.fakes.slack import FakeSlack
from tests.jobs.databases import admin_url
from tests.worker.harness import wait_until
from tests.worker.processes import Process, generator_env, start, start_generator

pytestmark = pytest.mark.timeout(120)
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


CHANNEL = "C0ART"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_channel(CHANNEL)
        yield fake


def posting_to(slack: FakeSlack, env: dict[str, str]) -> dict[str, str]:
    """A generator environment whose Slack poster talks to the fake."""
    return env | {"IMAGINE_SLACK_BOT_TOKEN": slack.bot_token, "IMAGINE_SLACK_API_URL": slack.api_url}


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


async def enqueue_many(
    queue: Queue, count: int, *, users: int = 3, images: tuple[int, ...] = (1, 2)
) -> list[int]:
    ids = []
    for i in range(count):
        request = EnqueueRequest(
            platform="slack",
            user_id=f"U{i % users}",
            guild_id="T0TEAM",
            channel_id=CHANNEL,
            prompt=f"a cat number {i}",
            options={"images": images[i % len(images)], "seed": i},
        )
        ids.append((await queue.enqueue(request)).job.id)
    return ids


async def jobs_of(queue: Queue, ids: list[int]) -> list[Job]:
    return [await queue.get_job(job_id) for job_id in ids]


def grids_posted(slack: FakeSlack) -> Counter[int]:
    """How many times each job's grid was shared in the channel (its file is `imagine-<job id>.png`)."""
    return Counter(
        int(upload.filename.removeprefix("imagine-").removesuffix(".png"))
        for upload in slack.completed_uploads(CHANNEL)
    )


async def all_delivered(queue: Queue, ids: list[int]) -> bool:
    return all(job.delivery.value == "delivered" for job in await jobs_of(queue, ids))


@sqlite_only
async def test_sigkill_mid_batch_then_restart(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes, slack
) -> None:
    ids = await enqueue_many(queue, 8)
    env = posting_to(slack, generator_env(db_url, tmp_path, tiny_checkpoints, lease_seconds=4))
    first = start_generator(env, tmp_path / "first.log", "--worker-id", "first")
    processes.append(first)

    async def some_done_and_one_running() -> bool:
        jobs = await jobs_of(queue, ids)
        return sum(j.status is Status.DONE for j in jobs) >= 2 and any(
            j.status is Status.RUNNING for j in jobs
        )

    await wait_until(some_done_and_one_running, timeout=60, what="a batch in flight after some jobs finished")
    first.signal(signal.SIGKILL)
    first.wait(10)
    before = {job.id: job for job in await jobs_of(queue, ids)}
    in_flight = [job.id for job in before.values() if job.status is Status.RUNNING]
    assert in_flight, "the kill should land mid-batch"

    second = start_generator(env, tmp_path / "second.log", "--worker-id", "second")
    processes.append(second)
    await wait_until(
        lambda: all_delivered(queue, ids), timeout=60, what="every job delivered after the restart"
    )

    after = {job.id: job for job in await jobs_of(queue, ids)}
    assert all(job.status is Status.DONE for job in after.values())
    for job_id, job in before.items():
        if job.status is Status.DONE:  # done before the crash: never rendered again
            assert after[job_id].finished_at == job.finished_at
            assert after[job_id].gpu_seconds == job.gpu_seconds
            assert second.actions("job_rendered")[job_id] == 0
    for job_id in in_flight:  # re-queued when the dead generator's lease expired, then drawn once more
        assert after[job_id].attempts == 2
        assert second.actions("job_rendered")[job_id] == 1
    rendered = first.actions("job_rendered") + second.actions("job_rendered")
    assert all(rendered[job_id] == 1 for job_id in ids)
    assert grids_posted(slack) == Counter(ids)  # every job posted once, none twice
    for job in after.values():
        assert len(await queue.images(job.id)) == job.images + 1


@postgres_only
async def test_sigkill_after_done_before_delivery(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes, slack
) -> None:
    ids = await enqueue_many(queue, 4)
    env = posting_to(slack, generator_env(db_url, tmp_path, tiny_checkpoints))
    renderer = start_generator(env, tmp_path / "render.log", "--worker-id", "renderer", "--no-deliver")
    processes.append(renderer)

    async def all_done() -> bool:
        return all(job.status is Status.DONE for job in await jobs_of(queue, ids))

    await wait_until(all_done, timeout=60, what="every job rendered")
    renderer.signal(signal.SIGKILL)
    renderer.wait(10)
    before = {job.id: job for job in await jobs_of(queue, ids)}
    assert all(job.delivery.value == "pending" for job in before.values())
    assert grids_posted(slack) == Counter()

    deliverer = start_generator(env, tmp_path / "deliver.log", "--worker-id", "deliverer", "--no-render")
    processes.append(deliverer)
    await wait_until(lambda: all_delivered(queue, ids), timeout=30, what="delivery by the second process")
    assert grids_posted(slack) == Counter(ids)
    for job in await jobs_of(queue, ids):
        assert job.finished_at == before[job.id].finished_at and job.attempts == 1  # not re-rendered
    workers = {w.worker_id: w for w in await queue.workers_seen(600)}
    assert workers["renderer"].jobs_done == 4 and workers["deliverer"].jobs_done == 0


@sqlite_only
async def test_sigterm_releases_in_flight_jobs(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes
) -> None:
    """(Finishing what can finish within the grace period is tested in-process: test_render.py.)"""
    grace = 0
    ids = await enqueue_many(queue, 12, images=(4,))
    lease = 20
    env = generator_env(db_url, tmp_path, tiny_checkpoints, lease_seconds=lease)
    generator = start_generator(
        env, tmp_path / "gen.log", "--worker-id", "gen", "--stop-grace-seconds", str(grace)
    )
    processes.append(generator)

    async def drawing() -> Job | None:
        return next(
            (j for j in await jobs_of(queue, ids) if j.status is Status.RUNNING and j.progress > 0), None
        )

    in_flight = await wait_until(drawing, timeout=60, what="a job being drawn")
    sent = time.monotonic()
    generator.signal(signal.SIGTERM)
    assert generator.wait(lease) == 0
    assert time.monotonic() - sent < lease
    jobs = {job.id: job for job in await jobs_of(queue, ids)}
    assert not any(job.status is Status.RUNNING for job in jobs.values())
    # The job seen drawing may finish before the signal lands (a tiny model is quick): what was in
    # flight at the signal is what the generator released. Later jobs keep it from being nothing.
    released = generator.actions("job_released")
    assert released, f"nothing was in flight at SIGTERM (job {in_flight.id} was drawing just before)"
    for job_id, count in released.items():  # back in the queue, once, the attempt not counted
        assert count == 1 and jobs[job_id].status is Status.QUEUED and jobs[job_id].attempts == 0
    assert all(job.status in (Status.QUEUED, Status.DONE) for job in jobs.values())  # nothing lost
    assert "action=worker_stopped" in generator.output()


@sqlite_only
async def test_sigterm_posts_what_finished_before_exiting(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes, slack
) -> None:
    """The drain: a job that finishes within the stop grace is posted by this generator before it exits,
    not left `done`/`pending` for some later one."""
    [job_id] = await enqueue_many(queue, 1, images=(4,))
    env = posting_to(slack, generator_env(db_url, tmp_path, tiny_checkpoints))
    generator = start_generator(env, tmp_path / "gen.log", "--stop-grace-seconds", "60")
    processes.append(generator)

    async def drawing() -> bool:
        # claimed, and a few steps in: a warm tiny model draws 4 images in less than a progress interval
        if (await queue.get_job(job_id)).status is not Status.RUNNING:
            return False
        await asyncio.sleep(0.2)
        return True

    await wait_until(drawing, timeout=60, what="the job being drawn")
    generator.signal(signal.SIGTERM)
    assert await asyncio.to_thread(generator.wait, 60) == 0, generator.output()  # the fake Slack answers
    job = await queue.get_job(job_id)
    assert job.status is Status.DONE and job.delivery.value == "delivered", generator.output()
    assert grids_posted(slack) == Counter([job_id])
    assert generator.actions("job_released") == Counter()


@sqlite_only
async def test_a_model_that_cannot_load_exits_with_one_line(
    queue: Queue, db_url: str, tmp_path: Path, processes
) -> None:
    """Offline hub, no local checkpoint. (A corrupt checkpoint's message is tested in-process.)"""
    [job_id] = await enqueue_many(queue, 1)
    env = generator_env(db_url, tmp_path, None, log_level="WARNING")
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")
    generator = start_generator(env, tmp_path / "gen.log")
    processes.append(generator)
    assert generator.wait(60) == ModelLoadError.exit_status == 8
    lines = generator.output().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("imagine generator: cannot load the model")
    assert "IMAGINE_MODEL_DIR" in lines[0] and "IMAGINE_VQGAN_DIR" in lines[0] and "make-tiny" in lines[0]
    assert "IMAGINE_CLIP_DIR=./tiny/clip IMAGINE_UPSCALER_DIR=./tiny/upscaler" in lines[0]
    assert "`hf download dalle-mini/dalle-mini" in lines[0]  # the CLI huggingface_hub installs today
    assert "`hf download dalle-mini/vqgan_imagenet_f16_16384" in lines[0]
    job = await queue.get_job(job_id)
    assert job.status is Status.QUEUED and job.attempts == 0  # never claimed: nothing lost


@sqlite_only
async def test_a_read_only_database_stops_the_generator_with_one_line(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes
) -> None:
    """Not a warning a second forever: the generator sees at start that nothing can be written."""
    [job_id] = await enqueue_many(queue, 1)
    await queue.close()
    path = make_url(db_url).database
    assert path
    if subprocess.run(["chattr", "+i", path], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and an ext4/xfs file system)")
    try:
        generator = start_generator(generator_env(db_url, tmp_path, tiny_checkpoints), tmp_path / "gen.log")
        processes.append(generator)
        assert generator.wait(30) == DatabaseUnavailable.exit_status
    finally:
        subprocess.run(["chattr", "-i", path], check=True)
    lines = generator.output().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imagine generator: "), lines
    assert "read-only" in lines[0] and "IMAGINE_DATABASE_URL" in lines[0]
    assert (await queue.get_job(job_id)).status is Status.QUEUED  # never claimed: nothing lost


@postgres_only
async def test_two_generators_share_fifty_jobs_fairly(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes, slack
) -> None:
    ids = []
    for user in range(5):  # each user queues 10 prompts in a row: FIFO would serve user4 last
        for i in range(10):
            request = EnqueueRequest(
                platform="slack",
                user_id=f"U{user}",
                guild_id="T0TEAM",
                channel_id=CHANNEL,
                prompt=f"a fox {user} {i}",
                options={"images": 1 + (i % 2), "seed": i},
            )
            ids.append((await queue.enqueue(request)).job.id)
    env = posting_to(slack, generator_env(db_url, tmp_path, tiny_checkpoints))
    generators = [start_generator(env, tmp_path / f"g{n}.log", "--worker-id", f"g{n}") for n in (1, 2)]
    processes.extend(generators)
    await wait_until(lambda: all_delivered(queue, ids), timeout=100, what="50 jobs delivered")

    jobs = await jobs_of(queue, ids)
    assert all(job.status is Status.DONE and job.attempts == 1 for job in jobs)
    rendered = generators[0].actions("job_rendered") + generators[1].actions("job_rendered")
    assert rendered == Counter(ids)  # each job rendered exactly once, by one of them
    workers = {w.worker_id: w for w in await queue.workers_seen(600)}
    assert workers["g1"].jobs_done > 0 and workers["g2"].jobs_done > 0
    assert workers["g1"].jobs_done + workers["g2"].jobs_done == 50
    assert grids_posted(slack) == Counter(ids)
    # Fairness: in start order, every user is served within the first ten starts.
    started = sorted(jobs, key=lambda job: (job.started_at, job.id))
    assert {job.user_id for job in started[:10]} == {f"U{u}" for u in range(5)}
    first_start = {
        user: next(i for i, job in enumerate(started) if job.user_id == f"U{user}") for user in range(5)
    }
    assert max(first_start.values()) < 10, first_start


async def _terminate_connections(database: str) -> int:
    url = make_url(admin_url()).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return len(rows)


@postgres_only
async def test_postgres_connections_dropped_under_a_running_generator(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes, slack
) -> None:
    """Every connection to the database is killed (as a server restart does) twice while the generator
    draws; it reconnects and carries on. `IMAGINE_TEST_RESTART_POSTGRES=1` restarts the real cluster
    instead (pg_ctlcluster; disturbs other suites using the server, so it is opt-in)."""
    ids = await enqueue_many(queue, 10)
    env = posting_to(slack, generator_env(db_url, tmp_path, tiny_checkpoints))
    generator = start_generator(env, tmp_path / "gen.log", "--worker-id", "gen")
    processes.append(generator)

    async def done_count() -> int:
        return sum(job.status is Status.DONE for job in await jobs_of(queue, ids))

    database = make_url(db_url).database
    assert database
    for target in (2, 5):
        await wait_until(lambda t=target: _at_least(done_count, t), timeout=60, what=f"{target} jobs done")
        if os.environ.get("IMAGINE_TEST_RESTART_POSTGRES") == "1":
            if target == 2:  # once: the whole server goes down and comes back
                restart = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"]
                subprocess.run(restart, check=True)
        else:
            assert await _terminate_connections(database) >= 1
    await wait_until(
        lambda: all_delivered(queue, ids), timeout=60, what="every job delivered after the drops"
    )
    assert generator.popen.poll() is None, generator.output()[-2000:]
    assert all(job.status is Status.DONE for job in await jobs_of(queue, ids))
    assert grids_posted(slack) == Counter(ids)


@sqlite_only
async def test_sigkill_mid_upscale_then_another_generator_finishes_it(
    queue: Queue, db_url: str, tmp_path: Path, tiny_checkpoints, processes, slack
) -> None:
    """An upscale whose generator is SIGKILLed while it draws tiles: the lease lapses, a second generator
    draws it again, and the 4× picture is posted once."""
    [parent] = await enqueue_many(queue, 1, images=(2,))
    # 8-px tiles sharing 7: a tiny upscaler of 8 stages draws the 32-px picture in 25 × 25 tiles, seconds
    upscaler = make_tiny_upscaler(tmp_path / "upscaler", stages=8)
    settings = {"lease_seconds": 4, "upscaler_dir": upscaler, "upscaler_tile_pixels": 8}
    settings["upscaler_overlap_pixels"] = 7
    env = posting_to(slack, generator_env(db_url, tmp_path, tiny_checkpoints, **settings))
    first = start_generator(env, tmp_path / "first.log", "--worker-id", "first")
    processes.append(first)
    await wait_until(lambda: all_delivered(queue, [parent]), timeout=60, what="the grid delivered")
    request = EnqueueRequest(
        platform="slack", user_id="U0", guild_id="T0TEAM", channel_id=CHANNEL, prompt="",
        kind=Kind.UPSCALE, parent_job_id=parent, image_index=1,
    )  # fmt: skip
    upscale = (await queue.enqueue(request)).job.id

    async def drawing() -> bool:
        job = await queue.get_job(upscale)
        return job.status is Status.RUNNING and job.progress > 0

    await wait_until(drawing, timeout=60, what="the upscale drawing, its progress reported")
    first.signal(signal.SIGKILL)
    first.wait(10)
    killed = await queue.get_job(upscale)
    assert killed.status is Status.RUNNING and 0 < killed.progress < 1, "the kill should land mid-upscale"

    second = start_generator(env, tmp_path / "second.log", "--worker-id", "second")
    processes.append(second)
    await wait_until(lambda: all_delivered(queue, [upscale]), timeout=60, what="the upscale delivered")
    assert (await queue.get_job(upscale)).status is Status.DONE
    assert first.actions("job_upscaled")[upscale] == 0 and second.actions("job_upscaled")[upscale] == 1
    uploads = [u for u in slack.completed_uploads(CHANNEL) if u.filename.startswith(f"imagine-{upscale}.")]
    assert len(uploads) == 1, [u.filename for u in slack.completed_uploads(CHANNEL)]
    with Image.open(io.BytesIO(uploads[0].content or b"")) as posted:
        assert posted.size == (4 * 32, 4 * 32)


async def _at_least(count: object, target: int) -> bool:
    return await count() >= target  # type: ignore[operator]


async def test_imagine_prompt_on_the_embedded_default(tmp_path: Path, tiny_checkpoints, processes) -> None:
    """`imagine "a prompt"` on a fresh data dir: migrates, starts a generator, writes the grid; again with
    the same seed: the same grid."""
    env = generator_env("", tmp_path / "data", tiny_checkpoints)
    del env["IMAGINE_DATABASE_URL"]  # the default: a SQLite file in the data dir
    outputs = []
    for run in (1, 2):
        out = tmp_path / f"grid{run}.png"
        cli = start(
            ["-m", "bot.cli", "a cat in the snow", "--images", "2", "--seed", "4", "--out", str(out)],
            env,
            tmp_path / f"cli{run}.log",
        )
        processes.append(cli)
        assert cli.wait(90) == 0, cli.output()
        assert f"wrote {out}" in cli.output()
        assert "[transformers]" not in cli.output() and "Loading weights" not in cli.output()  # no chatter
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert (tmp_path / "data" / "imagine.db").exists()

    # `imagine upscale JOB INDEX`: picture 2 of the first grid, 4× larger, through the queue
    out = tmp_path / "upscaled.png"
    cli = start(["-m", "bot.cli", "upscale", "1", "2", "--out", str(out)], env, tmp_path / "up.log")
    processes.append(cli)
    assert cli.wait(90) == 0, cli.output()
    assert f"wrote {out}" in cli.output() and "upscale of job 1 picture 2" in cli.output()
    assert f"wrote {out} (job 1 picture 2 4× larger, job " in cli.output()  # no seed: it has none of its own
    with Image.open(out) as upscaled:
        assert upscaled.size == (4 * 32, 4 * 32)
    missing = start(["-m", "bot.cli", "upscale", "99", "1"], env, tmp_path / "missing.log")
    processes.append(missing)
    assert missing.wait(30) != 0
    assert missing.output().strip().splitlines() == ["imagine: refused: job 99 does not exist"], (
        missing.output()
    )
