"""The render loop's scheduling: continuous batching vs batch-at-a-time vs one job at a time, in one run.

    .venv/bin/python -m bench.worker                 # tiny random model (seconds per mode)
    .venv/bin/python -m bench.worker --mini          # + mini-size random decoder (minutes; see below)
    .venv/bin/python -m bench.worker --only-mini --mini-jobs 4
    .venv/bin/python -m bench.worker --fast int8     # only: mini's images/s, float32 vs int8 decoder weights

Each mode runs the real `RenderLoop` against a fresh SQLite queue (in-process, no delivery) on the same
model, with the same stream of mixed jobs (1, 4, 2, 9, 1, 3, … images) arriving every N sampling steps (N
chosen so the arrivals match what a full batch draws: loaded, never starved; counted in steps, so a busy
shared machine does not change the workload) and as a backlog (all queued at once); the enqueuer pokes the
loop's wake-up as Postgres NOTIFY would.
Figures per mode: images/s over the stream (first arrival → last job done), mean and p95 time from
enqueue to done, and — in a second scenario — the time from enqueue to first token of a 1-image job that
arrives when a 4-image job is half drawn. Ratios are against batch-at-a-time from the same run.

Models: "tiny" is `generator.testing`'s tiny checkpoint (d_model 32, 2+2 layers, 256 tokens per image).
"mini" has dalle-mini's decoder widths (d_model 1024, 12+12 layers, 16 heads, ffn 2730, 16384 codes) with
random weights, but an 8×8-token image (64 steps instead of 256) and a tiny VQGAN, to keep a run to
minutes on 2 CPU cores: the cost of a step is mini's at short context, and scheduling is what is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from generator.engine import ModelEngine
from generator.model.checkpoints import load_vqgan
from generator.model.config import VQGanConfig
from generator.model.dalle import DalleMini
from generator.model.layers import WeightFormat
from generator.model.precision import reduce_decoder_weights
from generator.model.tokenizer import TextTokenizer
from generator.model.vqgan import VQGanDetokenizer
from generator.scheduler import Batching, RenderLoop
from generator.testing import TINY_VQGAN, make_tiny_checkpoints
from jobs.db import connect, migrate
from jobs.models import EnqueueRequest, Status
from jobs.queue import Limits, Queue

IMAGES_CYCLE = (1, 4, 2, 9, 1, 3, 2, 1, 4, 1)
CAPACITY = 8  # images drawn at once
FAST_POLL = {"claim_interval_seconds": 0.02, "busy_poll_seconds": 0.25, "idle_poll_seconds": 0.02}


@dataclass
class Figures:
    images_per_second: float
    mean_latency: float
    p95_latency: float
    first_token_wait: float = 0.0


def tiny_model(root: Path) -> DalleMini:
    return DalleMini.load(*make_tiny_checkpoints(root / "tiny"))


def mini_model(root: Path, decoder_weights: WeightFormat = "float32") -> DalleMini:
    """Mini-size decoder and encoder (random), 8×8-token images, a tiny VQGAN with 16384 codes."""
    from bench.model import MINI, random_bart

    dalle_dir, _ = make_tiny_checkpoints(root / "tok")
    config = replace(MINI, image_length=64)
    bart = random_bart(config, dtype=torch.float32, device=torch.device("cpu"))
    reduce_decoder_weights(bart, decoder_weights)
    vq_config: VQGanConfig = replace(TINY_VQGAN, resolution=16, n_embed=16384)  # grid 8×8
    with torch.device("cpu"):
        vqgan = VQGanDetokenizer(vq_config).eval().requires_grad_(False)
    tokenizer = TextTokenizer.from_pretrained(dalle_dir, normalize=False, max_length=config.max_text_length)
    _, loaded = load_vqgan(make_tiny_checkpoints(root / "vq")[1])  # only for the `loaded` record
    return DalleMini(bart=bart, vqgan=vqgan, tokenizer=tokenizer, loaded=(loaded, loaded))


async def fresh_queue(directory: Path) -> Queue:
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{(directory / 'bench.db').as_posix()}"
    await asyncio.to_thread(migrate, url)
    limits = Limits(max_queued_per_user=10**6, max_running_per_user=10**6, daily_quota_images=0)
    return Queue(engine=connect(url), limits=limits)


def request(i: int, images: int) -> EnqueueRequest:
    return EnqueueRequest(
        platform="cli",
        user_id=f"user{i % 4}",
        prompt=f"a painting of a fox number {i}",
        options={"images": images, "seed": i},
    )


async def run_until_done(loop: RenderLoop, queue: Queue, job_ids: list[int]) -> None:
    while True:
        jobs = [await queue.get_job(job_id) for job_id in job_ids]
        if all(job.status in (Status.DONE, Status.FAILED) for job in jobs):
            return
        await asyncio.sleep(0.02)


async def stream(model: DalleMini, batching: Batching, *, jobs: int, every: int, directory: Path) -> Figures:
    """Job i arrives once the generator has run i·`every` steps (or sooner, when it is idle: arrivals are
    counted in the model's own steps, so a busy shared machine does not change the workload);
    `every=0` queues them all at once. Returns throughput and latency for this scheduling mode."""
    queue = await fresh_queue(directory)
    loop = RenderLoop(
        queue=queue,
        engine=ModelEngine(model, capacity=CAPACITY, model_name="bench"),
        worker_id="bench",
        batching=batching,
        **FAST_POLL,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    ids: list[int] = []
    for i in range(jobs):
        while loop.steps_done < i * every and (loop.active or loop.engine.active_count):
            await asyncio.sleep(0.001)
        ids.append((await queue.enqueue(request(i, IMAGES_CYCLE[i % len(IMAGES_CYCLE)]))).job.id)
        loop.wake.set()
    await run_until_done(loop, queue, ids)
    done = [await queue.get_job(job_id) for job_id in ids]
    stop.set()
    await task
    await queue.close()
    first = min(job.created_at for job in done)
    last = max(job.finished_at for job in done if job.finished_at)
    latencies = sorted((job.finished_at - job.created_at).total_seconds() for job in done if job.finished_at)
    images = sum(job.images for job in done)
    return Figures(
        images / (last - first).total_seconds(),
        statistics.mean(latencies),
        latencies[max(0, round(0.95 * len(latencies)) - 1)],
    )


async def first_token_wait(model: DalleMini, batching: Batching, *, directory: Path) -> float:
    """A 1-image job arrives when a 4-image job is half drawn: seconds from its enqueue to its first token."""
    queue = await fresh_queue(directory)
    first_tokens: dict[int, float] = {}
    loop = RenderLoop(
        queue=queue,
        engine=ModelEngine(model, capacity=CAPACITY, model_name="bench"),
        worker_id="bench",
        batching=batching,
        on_first_token=lambda job_id: first_tokens.setdefault(job_id, time.perf_counter()),
        **FAST_POLL,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    big = (await queue.enqueue(request(0, 4))).job.id
    loop.wake.set()
    while not (big in loop.active and loop.progress(loop.active[big]) >= 0.5):
        await asyncio.sleep(0.001)
    enqueued_at = time.perf_counter()
    probe = (await queue.enqueue(request(1, 1))).job.id
    loop.wake.set()
    await run_until_done(loop, queue, [big, probe])
    stop.set()
    await task
    await queue.close()
    return first_tokens[probe] - enqueued_at


def step_seconds(model: DalleMini, rows: int) -> float:
    """Calibration: seconds per step with `rows` images in flight (after warm-up)."""
    from generator.engine import RowPlan
    from generator.model.sampler import SamplingSettings

    engine = ModelEngine(model, capacity=CAPACITY, model_name="bench")
    engine.add_rows([RowPlan((0, i), "a fox", SamplingSettings(seed=i)) for i in range(rows)])
    for _ in range(3):
        engine.step()
    runs = []
    for _ in range(5):  # the fastest of 5: a shared machine's hiccups would make the stream too sparse
        started = time.perf_counter()
        for _ in range(5):
            engine.step()
        runs.append((time.perf_counter() - started) / 5)
    return min(runs)


async def bench(name: str, model: DalleMini, jobs: int, root: Path, *, probes: int) -> None:
    steps = model.config.image_length
    per_step = step_seconds(model, CAPACITY // 2)
    # arrivals: as many images per step as a full batch draws, so the generator is loaded, never starved
    mean_images = statistics.mean(IMAGES_CYCLE)
    every = round(steps * mean_images / CAPACITY)
    images = sum(IMAGES_CYCLE[i % len(IMAGES_CYCLE)] for i in range(jobs))
    print(
        f"\n{name}: {steps} steps per image, {per_step * 1000:.1f} ms/step at {CAPACITY // 2} rows; "
        f"{jobs} jobs ({images} images), one every {every} steps, batch {CAPACITY} images"
    )
    results: dict[Batching, Figures] = {}
    backlog: dict[Batching, Figures] = {}
    for batching in (Batching.BATCH, Batching.CONTINUOUS, Batching.JOB):
        figures = await stream(model, batching, jobs=jobs, every=every, directory=root / f"{name}-{batching}")
        backlog[batching] = await stream(
            model, batching, jobs=jobs, every=0, directory=root / f"{name}-{batching}-b"
        )
        figures.first_token_wait = await first_token_wait(
            model, batching, directory=root / f"{name}-{batching}-p"
        )
        results[batching] = figures
    base, base_backlog = results[Batching.BATCH], backlog[Batching.BATCH]
    header = f"{'mode':<12}{'images/s':>10}{'×batch':>8}{'mean s':>9}{'p95 s':>8}"
    print(f"  {'':<12}{'stream (arrivals)':^35}{'':>21}{'backlog (all queued at once)':^35}")
    print(f"  {header}{'1st token s':>13}{'÷batch':>8}{header[12:]}")
    for batching, f in results.items():
        b, speed = backlog[batching], f.images_per_second / base.images_per_second
        print(
            f"  {batching.value:<12}{f.images_per_second:>10.2f}{speed:>8.2f}"
            f"{f.mean_latency:>9.2f}{f.p95_latency:>8.2f}{f.first_token_wait:>13.3f}"
            f"{base.first_token_wait / max(f.first_token_wait, 1e-9):>8.1f}"
            f"{b.images_per_second:>10.2f}{b.images_per_second / base_backlog.images_per_second:>8.2f}"
            f"{b.mean_latency:>9.2f}{b.p95_latency:>8.2f}"
        )
    print(f"  (1st token: a 1-image job arriving when a 4-image job is half drawn; median of {probes})")


async def precision_gain(root: Path, jobs: int, decoder_weights: WeightFormat, *, rounds: int = 2) -> None:
    """Images/s of the product path (the continuous-batching render loop on the mini model) with float32
    and with reduced decoder weights, the same jobs all queued at once; the two take turns `rounds` times
    and the best round of each counts (a shared machine's hiccups only ever slow a round down)."""
    models = {
        "float32": mini_model(root / "f32"),
        decoder_weights: mini_model(root / "fast", decoder_weights),
    }
    images = sum(IMAGES_CYCLE[i % len(IMAGES_CYCLE)] for i in range(jobs))
    print(f"\nmini, continuous batching, {jobs} jobs ({images} images) queued at once, batch {CAPACITY}: "
          f"decoder weights float32 vs {decoder_weights}")  # fmt: skip
    best: dict[str, float] = {}
    for r in range(rounds):
        for name, model in models.items():
            figures = await stream(
                model, Batching.CONTINUOUS, jobs=jobs, every=0, directory=root / f"{name}{r}"
            )
            best[name] = max(best.get(name, 0.0), figures.images_per_second)
    for name, rate in best.items():
        print(f"  {name:<9}{rate:8.2f} images/s  ×{rate / best['float32']:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs in the stream (default 20)")
    parser.add_argument("--mini", action="store_true", help="also the mini-size random model (minutes)")
    parser.add_argument("--mini-jobs", type=int, default=6, help="jobs in the mini stream (default 6)")
    parser.add_argument("--only-mini", action="store_true", help="skip the tiny model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--fast",
        choices=["int8", "bfloat16"],
        default=None,
        help="only: mini's images/s, float32 vs these weights",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.fast:  # only this figure
            await precision_gain(root, args.mini_jobs, args.fast)
            return
        if not args.only_mini:
            await bench("tiny", tiny_model(root), args.jobs, root, probes=3)
        if args.mini or args.only_mini:
            await bench("mini", mini_model(root), args.mini_jobs, root, probes=1)


if __name__ == "__main__":
    asyncio.run(main())
