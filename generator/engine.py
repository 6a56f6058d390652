"""What the render loop needs from the model: the step-wise sampler behind a small interface.

`ModelEngine` wraps `DalleMini` + `Sampler` (generator/model/dalle.py, generator/model/sampler.py): rows
are keyed by (job id, image index), prompts are encoded when rows join, and `resize` rebuilds the sampler
with another capacity (CUDA out of memory: the render loop halves it). Each row's settings come from
`SamplingSettings.for_image`, as in `DalleMini.tokens`, so a job renders the same picture as
`python -m generator render`. Everything here blocks: the render loop calls it from a thread.
"""

from __future__ import annotations

import gc
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image

from generator.model.dalle import DalleMini
from generator.model.sampler import FinishedRow, RowRequest, SamplingSettings

RowKey = tuple[int, int]  # (job id, image index)


@dataclass(frozen=True)
class RowPlan:
    """One image of one job, as the render loop asks for it."""

    key: RowKey
    prompt: str
    settings: SamplingSettings
    prefix: torch.Tensor | None = None  # forced leading codes (variations)


class Engine(Protocol):
    """The sampler as the render loop sees it (tests wrap `ModelEngine` to inject faults)."""

    @property
    def capacity(self) -> int: ...
    @property
    def free_count(self) -> int: ...
    @property
    def active_count(self) -> int: ...
    @property
    def image_length(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def model_name(self) -> str: ...

    def add_rows(self, rows: Sequence[RowPlan]) -> None: ...
    def step(self) -> list[FinishedRow]: ...
    def drop_rows(self, keys: Iterable[Hashable]) -> None: ...
    def positions(self) -> dict[Hashable, int]: ...
    def partial_tokens(self, keys: Iterable[Hashable]) -> dict[Hashable, tuple[torch.Tensor, int]]: ...
    def decode(self, tokens: torch.Tensor) -> list[Image.Image]: ...
    def resize(self, capacity: int) -> None: ...


class ModelEngine:
    def __init__(self, model: DalleMini, *, capacity: int, model_name: str) -> None:
        self.model = model
        self._model_name = model_name
        self._capacity = capacity  # readable while `resize` rebuilds the sampler in a thread
        self.sampler = model.new_sampler(capacity)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def free_count(self) -> int:
        return self.sampler.free_count

    @property
    def active_count(self) -> int:
        return self.sampler.active_count

    @property
    def image_length(self) -> int:
        return self.sampler.image_length

    @property
    def device(self) -> str:
        return str(self.sampler.device)

    @property
    def model_name(self) -> str:
        return self._model_name

    def add_rows(self, rows: Sequence[RowPlan]) -> None:
        prompts = sorted({row.prompt for row in rows})
        index = {prompt: i for i, prompt in enumerate(prompts)}
        text_tokens = self.model.tokenizer.encode(prompts)
        requests = [RowRequest(row.key, index[row.prompt], row.settings, row.prefix) for row in rows]
        self.sampler.add_rows(text_tokens, requests)

    def step(self) -> list[FinishedRow]:
        return self.sampler.step()

    def drop_rows(self, keys: Iterable[Hashable]) -> None:
        self.sampler.drop_rows(keys)

    def positions(self) -> dict[Hashable, int]:
        return self.sampler.positions()

    def partial_tokens(self, keys: Iterable[Hashable]) -> dict[Hashable, tuple[torch.Tensor, int]]:
        return self.sampler.partial_tokens(keys)

    def decode(self, tokens: torch.Tensor) -> list[Image.Image]:
        return self.model.decode(tokens)

    def resize(self, capacity: int) -> None:
        """A new, empty sampler for `capacity` rows (every active row is dropped)."""
        self.sampler.drop_rows(self.sampler.positions())
        self._capacity = capacity
        del self.sampler  # free the old caches before allocating the new ones (out of memory: halving)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.sampler = self.model.new_sampler(capacity)


def oom_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the batch does not fit on the device"."""
    return (torch.cuda.OutOfMemoryError,)
