"""Step-wise sampling engine for DalleBart: continuous batching of image rows.

Reference for the maths: dalle-mini ``DalleBart.generate``/``_sample`` (super-conditioning
``uncond + s·(cond − uncond)`` on the logits, then transformers' warpers in order temperature → top-k →
top-p, then a categorical draw) and min-dalle ``generate_raw_image_stream`` (preallocated caches, sampling
settings on the device, conditional and unconditional sequences in one batch).

Shapes: a *row* is one image being drawn; it occupies a *slot* (0..n-1, kept compact) and two decoder
*sequences* (2i: conditioned on its prompt, 2i+1: on the empty prompt). Per step every row advances by one
token at its own position, so rows may join (`add_rows`) or leave (`drop_rows`) between any two steps.

- self-attention keys/values: (layers, 2·capacity, h, 256, hd), written in place at each row's position;
- cross-attention keys/values: a table of prompts (layers, h, (capacity+1)·T, hd), computed once per prompt
  when its rows join and shared by all its rows; entry 0 is the empty prompt, shared by every row;
- per-row state (position, tokens, temperature, top-k, top-p, guidance scale, noise key) lives on the
  device in one `RowTensors`; the host keeps a `Row` per slot (key, position, effective top-k), so the
  loop never waits on the device except to hand back the 256 tokens of a finished row.

Determinism: the random draw of a row at position p uses noise derived only from (seed, p) by a
counter-based hash (SplitMix64) and the Gumbel-max trick, so a row's tokens depend on its prompt, seed and
settings, not on which rows share the batch or when it joined (up to float rounding of batched matmuls).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from generator.model.bart import DalleBart
from generator.model.decoder import AttentionCache
from jobs.options import JobOptions

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer on int64 tensors (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    return x ^ _shift_right(x, 31)


def seed_key(seed: int) -> int:
    """A row's 64-bit noise key for a user seed (host side, once per row)."""
    return int(splitmix64(torch.tensor([_signed(seed)], dtype=torch.int64))[0])


def gumbel_noise(keys: torch.Tensor, positions: torch.Tensor, count: int) -> torch.Tensor:
    """Gumbel(0, 1) noise (n, count) float32: entry j of row r depends only on (keys[r], positions[r], j)."""
    j = torch.arange(count, device=keys.device, dtype=torch.int64)
    counter = positions[:, None].to(torch.int64) * 1_000_003 + j[None, :]  # distinct per (position, rank)
    bits = splitmix64(keys[:, None] ^ splitmix64(counter))
    uniform = (_shift_right(bits, 11).to(torch.float64) + 0.5) * 2.0**-53  # (0, 1), 53 random bits
    return (-torch.log(-torch.log(uniform))).to(torch.float32)


@dataclass(frozen=True)
class SamplingSettings:
    """How one image is drawn. `None` switches top-k and top-p off, as in `JobOptions`."""

    seed: int
    top_k: int | None = 256
    top_p: float | None = None
    temperature: float = 1.0
    guidance_scale: float = 10.0  # super-conditioning; 1.0 = plain conditional sampling

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be positive or None (off), got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] or None (off), got {self.top_p}")
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")

    @classmethod
    def for_image(cls, options: JobOptions, index: int) -> SamplingSettings:
        """Image `index` of a job: its options, with the seed `options.seed + index` (the one rule, so
        adding images to a grid never changes the first ones)."""
        return cls(
            seed=(options.seed + index) % 2**63,
            top_k=options.top_k,
            top_p=options.top_p,
            temperature=options.temperature,
            guidance_scale=options.guidance_scale,
        )


@dataclass(frozen=True)
class RowRequest:
    """One image to draw: `key` is the caller's handle (a job id and image index, say)."""

    key: Hashable
    prompt_index: int  # row of the `text_tokens` given to `add_rows` with it
    settings: SamplingSettings
    prefix: torch.Tensor | None = (
        None  # (k,) codes forced at positions 0..k-1 (variations keep rows of a grid)
    )


@dataclass(frozen=True)
class FinishedRow:
    key: Hashable
    tokens: torch.Tensor  # (image_length,) long, on the CPU


def _per_row(dtype: torch.dtype, fill: float = 0, *, per_position: bool = False) -> dict[str, Any]:
    """A `RowTensors` field's metadata: its dtype, initial value and whether it has one entry per position."""
    return {"dtype": dtype, "fill": fill, "per_position": per_position}


@dataclass
class RowTensors:
    """Every row's state on the device, indexed by slot (dim 0). A per-row setting is one field here:
    `allocate` makes it, `move` keeps it with its row when slots are compacted; `Sampler._add_row` fills
    it and `Sampler._draw` (or the step) reads it."""

    positions: torch.Tensor = field(metadata=_per_row(torch.long))  # tokens drawn so far
    last_token: torch.Tensor = field(metadata=_per_row(torch.long))  # the decoder's input at the next step
    # (capacity, image_length): the codes drawn, and those forced (a variation's prefix)
    tokens: torch.Tensor = field(metadata=_per_row(torch.long, per_position=True))
    forced: torch.Tensor = field(metadata=_per_row(torch.long, per_position=True))
    forced_count: torch.Tensor = field(metadata=_per_row(torch.long))
    temperature: torch.Tensor = field(metadata=_per_row(torch.float32, 1.0))
    top_k: torch.Tensor = field(metadata=_per_row(torch.long))  # effective k: code_count when off
    top_p: torch.Tensor = field(metadata=_per_row(torch.float32, 1.0))  # 1.0 when off
    guidance: torch.Tensor = field(metadata=_per_row(torch.float32, 1.0))
    noise_keys: torch.Tensor = field(metadata=_per_row(torch.int64))  # seed_key(seed)

    @classmethod
    def allocate(cls, capacity: int, image_length: int, device: torch.device) -> RowTensors:
        tensors = {}
        for spec in fields(cls):
            shape = (capacity, image_length) if spec.metadata["per_position"] else (capacity,)
            tensors[spec.name] = torch.full(
                shape, spec.metadata["fill"], dtype=spec.metadata["dtype"], device=device
            )
        return cls(**tensors)

    def move(self, source: int, target: int) -> None:
        """Copy slot `source`'s state into slot `target`."""
        for spec in fields(self):
            tensor = getattr(self, spec.name)
            tensor[target] = tensor[source]


@dataclass
class Row:
    """What the host keeps of a row, so the loop never waits on the device."""

    key: Hashable
    prompt_entry: int  # its prompt's entry in the cross-attention table
    top_k: int  # effective k (for the step's widest top-k)
    position: int = 0


class Sampler:
    """Preallocated decoding state for up to `capacity` rows; see the module docstring."""

    def __init__(
        self,
        model: DalleBart,
        *,
        capacity: int,
        code_count: int,
        unconditional_tokens: torch.Tensor,  # (1, T): the empty prompt, tokenized
        pad_token_id: int,
    ) -> None:
        config = model.config
        parameter = next(model.parameters())
        if not 0 < code_count <= config.image_vocab_size:
            raise ValueError(
                f"code_count {code_count} must be in 1..image_vocab_size ({config.image_vocab_size})"
            )
        model.decoder.prepare_step()
        self.model = model
        self.config = config
        self.capacity = capacity
        self.code_count = code_count
        self.pad_token_id = pad_token_id
        self.device = parameter.device
        self.dtype = parameter.dtype
        self.image_length = config.image_length
        t, n = config.max_text_length, config.image_length
        self._text_length = t
        device = self.device

        with torch.inference_mode():
            self.cache = AttentionCache.allocate(
                config,
                sequence_count=2 * capacity,
                prompt_count=capacity + 1,
                dtype=self.dtype,
                device=device,
            )
            self._prompt_is_token = torch.zeros((capacity + 1, t), dtype=torch.bool, device=device)
            self._cross_mask = torch.zeros(
                (1, 1, 2 * capacity, (capacity + 1) * t), dtype=torch.bool, device=device
            )
            self._state = RowTensors.allocate(capacity, n, device)
            self._key_index = torch.arange(n, device=device)  # self-attention key positions
            self._rank = torch.arange(code_count, device=device)  # ranks of the sorted candidates

        self.last_logits: torch.Tensor | None = None  # the guided logits the last step drew from (fidelity)
        self._rows: list[Row] = []  # by slot; the host's mirror of what the loop needs
        self._prompt_refs: dict[int, int] = {}  # table entry → rows using it (entry 0: the empty prompt)
        with torch.inference_mode():
            self._write_prompts([0], unconditional_tokens.to(device))

    # ---- public state ----

    @property
    def active_count(self) -> int:
        return len(self._rows)

    @property
    def free_count(self) -> int:
        return self.capacity - len(self._rows)

    def positions(self) -> dict[Hashable, int]:
        """Tokens drawn so far by each active row (256 = finished)."""
        return {row.key: row.position for row in self._rows}

    @torch.inference_mode()
    def partial_tokens(self, keys: Iterable[Hashable]) -> dict[Hashable, tuple[torch.Tensor, int]]:
        """The codes drawn so far by these active rows (on the CPU) and how many there are (previews)."""
        wanted = set(keys)
        slots = [i for i, row in enumerate(self._rows) if row.key in wanted]
        if not slots:
            return {}
        tokens = self._state.tokens[slots].cpu()
        return {self._rows[s].key: (tokens[i], self._rows[s].position) for i, s in enumerate(slots)}

    # ---- rows joining and leaving ----

    @torch.inference_mode()
    def add_rows(self, text_tokens: torch.Tensor, rows: Sequence[RowRequest]) -> None:
        """Start `rows` at the next step; `text_tokens` (P, T) holds the prompts they name by index.

        Each prompt used by a row is encoded once and its cross-attention keys/values are stored once.
        """
        if len(rows) > self.free_count:
            raise ValueError(
                f"{len(rows)} rows do not fit: {self.free_count} of {self.capacity} slots are free"
            )
        known = {row.key for row in self._rows}
        for row in rows:
            if row.key in known:
                raise ValueError(f"row key {row.key!r} is already active")
            known.add(row.key)
            if row.prefix is not None and row.prefix.numel() > self.image_length:
                raise ValueError(f"prefix of {row.prefix.numel()} codes is longer than an image")
        used = sorted({row.prompt_index for row in rows})
        entries = self._free_entries(len(used))
        if used:
            self._write_prompts(entries, text_tokens[used].to(self.device))
        entry_of = dict(zip(used, entries, strict=True))
        for row in rows:
            self._add_row(row, entry_of[row.prompt_index])

    def _free_entries(self, count: int) -> list[int]:
        free = [e for e in range(1, self.capacity + 1) if e not in self._prompt_refs]
        return free[:count]

    def _write_prompts(self, entries: list[int], text_tokens: torch.Tensor) -> None:
        t = self._text_length
        is_token = text_tokens != self.pad_token_id  # (P, T)
        encoder_state = self.model.encoder(text_tokens, is_token)  # (P, T, d)
        keys, values = self.model.decoder.cross_keys_values(encoder_state)  # (layers, P, h, T, hd)
        for i, entry in enumerate(entries):
            self.cache.cross_keys[:, :, entry * t : (entry + 1) * t] = keys[:, i]
            self.cache.cross_values[:, :, entry * t : (entry + 1) * t] = values[:, i]
            self._prompt_is_token[entry] = is_token[i]
            self._prompt_refs[entry] = 0

    def _add_row(self, row: RowRequest, entry: int) -> None:
        slot = len(self._rows)
        t, settings = self._text_length, row.settings
        top_k = min(settings.top_k or self.code_count, self.code_count)
        self._rows.append(Row(key=row.key, prompt_entry=entry, top_k=top_k))
        self._prompt_refs[entry] += 1
        self._prompt_refs[0] += 1
        cond, uncond = 2 * slot, 2 * slot + 1
        self._cross_mask[0, 0, cond].zero_()
        self._cross_mask[0, 0, cond, entry * t : (entry + 1) * t] = self._prompt_is_token[entry]
        self._cross_mask[0, 0, uncond].zero_()
        self._cross_mask[0, 0, uncond, :t] = self._prompt_is_token[0]
        state = self._state
        state.positions[slot] = 0
        state.last_token[slot] = self.config.decoder_start_token_id
        prefix_count = 0 if row.prefix is None else row.prefix.numel()
        if row.prefix is not None and prefix_count:
            state.forced[slot, :prefix_count] = (
                row.prefix.reshape(-1).to(self.device).clamp(0, self.code_count - 1)
            )
        state.forced_count[slot] = prefix_count
        state.temperature[slot] = settings.temperature
        state.top_k[slot] = top_k
        state.top_p[slot] = 1.0 if settings.top_p is None else settings.top_p
        state.guidance[slot] = settings.guidance_scale
        state.noise_keys[slot] = seed_key(settings.seed)

    @torch.inference_mode()
    def drop_rows(self, keys: Iterable[Hashable]) -> None:
        """Remove rows (cancelled jobs) before the next step; unknown keys are ignored."""
        wanted = set(keys)
        for slot in sorted((i for i, row in enumerate(self._rows) if row.key in wanted), reverse=True):
            self._remove_slot(slot)

    def _remove_slot(self, slot: int) -> None:
        entry = self._rows[slot].prompt_entry
        self._prompt_refs[entry] -= 1
        self._prompt_refs[0] -= 1
        if entry != 0 and self._prompt_refs[entry] == 0:
            del self._prompt_refs[entry]
        last = len(self._rows) - 1
        if slot != last:  # keep slots compact: move the last row into the hole
            c = self.cache
            for buffer in (c.self_keys, c.self_values):
                buffer[:, 2 * slot : 2 * slot + 2] = buffer[:, 2 * last : 2 * last + 2]
            self._cross_mask[0, 0, 2 * slot : 2 * slot + 2] = self._cross_mask[0, 0, 2 * last : 2 * last + 2]
            self._state.move(last, slot)
            self._rows[slot] = self._rows[last]
        self._rows.pop()

    # ---- one step ----

    @torch.inference_mode()
    def next_logits(self) -> torch.Tensor:
        """The guided logits (active rows, code_count) the next `step` draws from, in slot order of
        `positions()`; for inspection and tests (it runs the decoder once more: not for the hot loop)."""
        return self._guided_logits(len(self._rows)) if self._rows else torch.empty(0, self.code_count)

    @torch.inference_mode()
    def step(self) -> list[FinishedRow]:
        """Draw one token for every active row; return the rows that drew their last token."""
        n = len(self._rows)
        if n == 0:
            return []
        state = self._state
        positions = state.positions[:n]
        logits = self._guided_logits(n)  # (n, code_count) float32
        self.last_logits = logits
        drawn = self._draw(logits, n)
        forced = state.forced[:n].gather(1, positions[:, None])[:, 0]
        token = torch.where(positions < state.forced_count[:n], forced, drawn)
        state.tokens[:n].scatter_(1, positions[:, None], token[:, None])
        state.last_token[:n] = token
        state.positions[:n] += 1
        for row in self._rows:
            row.position += 1

        finished_slots = [i for i, row in enumerate(self._rows) if row.position >= self.image_length]
        if not finished_slots:
            return []
        tokens = state.tokens[finished_slots].cpu()  # the only device → host copy: finished rows
        finished = [FinishedRow(self._rows[s].key, tokens[i]) for i, s in enumerate(finished_slots)]
        for slot in reversed(finished_slots):
            self._remove_slot(slot)
        return finished

    def _guided_logits(self, n: int) -> torch.Tensor:
        """Logits over the real codes after super-conditioning: (n, code_count) float32."""
        s = 2 * n
        positions = self._state.positions[:n].repeat_interleave(2)  # (S,) cond, uncond of each row
        tokens = self._state.last_token[:n].repeat_interleave(2)
        key_count = max(row.position for row in self._rows) + 1  # keys 0..L-1 can be visible to someone
        self_mask = (self._key_index[None, :key_count] <= positions[:, None]).view(s, 1, 1, key_count)
        cross_count = (max(self._prompt_refs) + 1) * self._text_length
        hidden = self.model.decoder.forward_step(
            tokens, positions, self.cache, self_mask, cross_count, self._cross_mask[:, :, :s, :cross_count]
        )
        logits = self.model.decoder.logits(hidden, self.code_count).float().view(n, 2, self.code_count)
        cond, uncond = logits[:, 0], logits[:, 1]
        return uncond + self._state.guidance[:n, None] * (cond - uncond)

    def _draw(self, logits: torch.Tensor, n: int) -> torch.Tensor:
        """temperature → top-k → top-p → categorical (Gumbel-max with per-row counter noise)."""
        state = self._state
        logits = logits / state.temperature[:n, None]
        k_max = max(row.top_k for row in self._rows)
        values, codes = logits.topk(k_max, dim=-1)  # (n, k_max), sorted descending
        values = values.masked_fill(self._rank[None, :k_max] >= state.top_k[:n, None], float("-inf"))
        probabilities = values.softmax(dim=-1)
        mass_before = probabilities.cumsum(dim=-1) - probabilities  # keep while the mass before is < top_p
        values = values.masked_fill(mass_before >= state.top_p[:n, None], float("-inf"))
        noise = gumbel_noise(state.noise_keys[:n], state.positions[:n], k_max)
        choice = (values + noise).argmax(dim=-1, keepdim=True)
        return codes.gather(1, choice)[:, 0]


def generate(
    sampler: Sampler,
    text_tokens: torch.Tensor,
    rows: Sequence[RowRequest],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[Hashable, torch.Tensor]:
    """Draw every row to the end, admitting waiting rows as slots free up; returns key → (256,) tokens.

    `progress(done_tokens, total_tokens)` is called after every step.
    """
    pending = list(rows)
    results: dict[Hashable, torch.Tensor] = {}
    total = len(rows) * sampler.image_length
    done = 0
    while pending or sampler.active_count:
        if pending and sampler.free_count:
            admitted, pending = pending[: sampler.free_count], pending[sampler.free_count :]
            sampler.add_rows(text_tokens, admitted)
        done += sampler.active_count
        for row in sampler.step():
            results[row.key] = row.tokens
        if progress is not None:
            progress(done, total)
    return results
