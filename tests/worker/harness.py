"""Building in-process generators for the tests: the real render and delivery loops, fast knobs, an
engine wrapper that injects faults (the only stand-in: the queue and the model are real), and
`wait_until`, the bounded poll the worker tests wait with."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from PIL import Image

from bot.posters import Poster
from generator.delivery import Deliverer
from generator.engine import ModelEngine, RowPlan
from generator.model.sampler import FinishedRow
from generator.scheduler import RenderLoop
from generator.worker import Worker
from jobs.queue import Queue

FAST_RENDER = {
    "claim_interval_seconds": 0.02,
    "busy_poll_seconds": 0.05,
    "idle_poll_seconds": 0.05,
    "progress_seconds": 0.05,
}


async def wait_until(
    condition: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""

    async def poll() -> Any:
        while True:
            value = await condition()
            if value:
                return value
            await asyncio.sleep(interval)

    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")


class InjectedOutOfMemory(RuntimeError):
    """Stands for torch.cuda.OutOfMemoryError on a CPU-only test machine."""


class FaultyEngine:
    """A real `ModelEngine` whose `step` raises `error` while `failures` last and more than
    `rows_over` rows are active; it records the capacities it was resized to."""

    def __init__(
        self,
        inner: ModelEngine,
        *,
        error: BaseException,
        failures: int = 1,
        rows_over: int = 0,
        step_delay: float = 0.0,
    ):
        self.inner = inner
        self.step_delay = step_delay  # seconds per step: a slower "GPU", so tests can act mid-batch
        self.error = error
        self.failures = failures
        self.rows_over = rows_over
        self.resized_to: list[int] = []
        self.steps = 0
        self.decoded = 0  # images the VQGAN decoded (finished grids and previews)

    capacity = property(lambda self: self.inner.capacity)
    free_count = property(lambda self: self.inner.free_count)
    active_count = property(lambda self: self.inner.active_count)
    image_length = property(lambda self: self.inner.image_length)
    device = property(lambda self: self.inner.device)
    model_name = property(lambda self: self.inner.model_name)

    def add_rows(self, rows: Sequence[RowPlan]) -> None:
        self.inner.add_rows(rows)

    def step(self) -> list[FinishedRow]:
        self.steps += 1
        if self.step_delay:
            time.sleep(self.step_delay)
        if self.failures and self.inner.active_count > self.rows_over:
            self.failures -= 1
            raise self.error
        return self.inner.step()

    def drop_rows(self, keys: Iterable[Hashable]) -> None:
        self.inner.drop_rows(keys)

    def positions(self) -> dict[Hashable, int]:
        return self.inner.positions()

    def partial_tokens(self, keys: Iterable[Hashable]) -> dict[Hashable, tuple[torch.Tensor, int]]:
        return self.inner.partial_tokens(keys)

    def decode(self, tokens: torch.Tensor) -> list[Image.Image]:
        self.decoded += len(tokens)
        return self.inner.decode(tokens)

    def resize(self, capacity: int) -> None:
        self.resized_to.append(capacity)
        self.inner.resize(capacity)


@dataclass
class Generator:
    worker: Worker
    render: RenderLoop
    deliverer: Deliverer


def make_generator(
    queue: Queue,
    engine: object,
    *,
    posters: Mapping[str, Poster],
    worker_id: str = "w-test",
    deliver: bool = True,
    **render_knobs: object,
) -> Generator:
    render = RenderLoop(queue=queue, engine=engine, worker_id=worker_id, **{**FAST_RENDER, **render_knobs})  # type: ignore[arg-type]
    deliverer = Deliverer(queue=queue, posters=posters, poll_seconds=0.05)
    render.on_progress = deliverer.note_progress
    render.on_finished = deliverer.note_finished
    render.on_preview = deliverer.note_preview
    worker = Worker(
        queue=queue,
        worker_id=worker_id,
        render=render,
        deliverer=deliverer if deliver else None,
        device="cpu",
        model="tiny",
        registry_seconds=0.5,
    )
    return Generator(worker, render, deliverer)
