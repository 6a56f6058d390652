"""How close a reduced-precision model draws to float32: distances of the distributions it samples from.

Top-1 agreement is the wrong yardstick for a sampler that draws from the top 256 codes; what must stay
close is the distribution each draw is made from. Teacher-forced: the float32 `reference` draws rows (its
own sampling, default settings: super-conditioning 10, temperature 1, top-k 256); `other` is then forced
along the very same codes, and at every step both models' next-code distributions (guided logits →
temperature → top-k, softmax over the kept codes) are compared:

- total-variation distance ½·Σ|p − q| (0: the same distribution, 1: disjoint), its mean and 99th percentile;
- the fraction of steps whose top-k sets differ by more than 5 % of k.

For pictures, `psnr` compares two VQGANs' pixels over the same code grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from generator.model.bart import DalleBart
from generator.model.sampler import RowRequest, Sampler, SamplingSettings
from generator.model.vqgan import VQGanDetokenizer

TOPK_DIFFER = 0.05  # a step "differs" when more than this fraction of the top-k codes are not shared


@dataclass(frozen=True)
class Fidelity:
    mean_tv: float
    p99_tv: float
    topk_differ: float  # fraction of steps whose top-k sets differ by more than 5 %
    steps: int  # (row, position) pairs compared

    def __str__(self) -> str:
        return (
            f"TV mean {self.mean_tv:.4f} p99 {self.p99_tv:.4f}, top-k sets differ >5 % at "
            f"{100 * self.topk_differ:.1f} % of {self.steps} steps"
        )


def _drawn_logits(
    model: DalleBart,
    text_tokens: torch.Tensor,
    *,
    rows: int,
    steps: int,
    code_count: int,
    forced: torch.Tensor | None,
    pad_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `rows` images of prompt 1 of `text_tokens` (row 0: the empty prompt) for `steps` steps, each
    forced along `forced[i]` if given → (the guided logits of every step (steps, rows, codes), the codes
    drawn (rows, steps))."""
    sampler = Sampler(
        model,
        capacity=rows,
        code_count=code_count,
        unconditional_tokens=text_tokens[:1],
        pad_token_id=pad_token_id,
    )
    requests = [
        RowRequest(i, 1, SamplingSettings(seed=i), None if forced is None else forced[i]) for i in range(rows)
    ]
    sampler.add_rows(text_tokens, requests)
    logits = []
    for _ in range(steps):
        sampler.step()
        assert sampler.last_logits is not None
        logits.append(sampler.last_logits.clone())
    return torch.stack(logits), sampler._state.tokens[:rows, :steps].clone()


def _kept(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, codes) logits at temperature 1 → (the distribution over all codes after top-k, the kept codes)."""
    values, codes = logits.topk(top_k, dim=-1)
    probabilities = torch.zeros_like(logits).scatter_(1, codes, values.softmax(dim=-1))
    return probabilities, codes


def teacher_forced_fidelity(
    reference: DalleBart,
    other: DalleBart,
    text_tokens: torch.Tensor,  # (2, T): the empty prompt, then the prompt drawn
    *,
    code_count: int,
    pad_token_id: int = 1,
    rows: int = 2,
    steps: int | None = None,
    top_k: int = 256,
) -> Fidelity:
    """Distances between `other`'s and `reference`'s next-code distributions along `reference`'s draws."""
    run = {"text_tokens": text_tokens, "rows": rows, "code_count": code_count, "pad_token_id": pad_token_id}
    run["steps"] = steps or reference.config.image_length
    with torch.inference_mode():
        ref_logits, drawn = _drawn_logits(reference, forced=None, **run)
        other_logits, forced = _drawn_logits(other, forced=drawn, **run)
    assert torch.equal(forced, drawn), "the other model was not forced along the reference's codes"
    top_k = min(top_k, code_count)
    p, p_codes = _kept(ref_logits.flatten(0, 1), top_k)
    q, q_codes = _kept(other_logits.flatten(0, 1), top_k)
    tv = 0.5 * (p - q).abs().sum(dim=-1)
    in_both = (torch.zeros_like(p, dtype=torch.bool).scatter_(1, p_codes, True)).gather(1, q_codes)
    shared = in_both.sum(dim=-1).float() / top_k
    return Fidelity(
        mean_tv=float(tv.mean()),
        p99_tv=float(torch.quantile(tv.double(), 0.99)),
        topk_differ=float((shared < 1 - TOPK_DIFFER).float().mean()),
        steps=int(tv.numel()),
    )


def psnr(reference: VQGanDetokenizer, other: VQGanDetokenizer, codes: torch.Tensor) -> float:
    """PSNR in dB of `other`'s uint8 pixels against `reference`'s for the code grids `codes` (n, g·g)."""
    a = reference.decode_uint8(codes).double()
    b = other.decode_uint8(codes).double()
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(255.0**2 / mse)).item()
