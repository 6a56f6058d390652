"""Decode speed of our DalleBart sampler beside min-dalle's torch classes on the same random mini weights.

    .venv/bin/python -m bench.model --quick      # a few minutes on 2 cores: timed steps, extrapolated to 256
    .venv/bin/python -m bench.model              # full 256-step runs, end to end
    .venv/bin/python -m bench.model --quick --int8 --profile

(Run it as a module: bench/queue.py would shadow the standard library queue module for a script in bench/.)

Weights: dalle-mini's shapes (d_model 1024, 12+12 layers, 16 heads, ffn 2730, text vocab 50264, image vocab
16384 + 1) drawn at random in torch (normal, std 0.02 as dalle-mini's init; layer norms at their init), no
download. min-dalle gets the very same tensors. Both run fp32 on the CPU with the same thread count.
Per image count: warm-up steps, then timed steps; "decode" is ms per step for the whole batch and image
tokens per second; "end to end" is text encoding + 256 steps + VQGAN decode (extrapolated in --quick mode
from the timed steps). The ratio printed is min-dalle time / our time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import time
from collections.abc import Callable

import torch
from torch import nn

from generator.bart import DalleBart
from generator.config import DalleBartConfig, VQGanConfig
from generator.sampler import RowRequest, Sampler, SamplingSettings
from generator.vqgan import VQGanDetokenizer

MINI = DalleBartConfig(encoder_ffn_dim=2730, decoder_ffn_dim=2730)
STEPS = 256
PAD, START, END = 1, 0, 2


def random_mini(seed: int = 0) -> DalleBart:
    torch.manual_seed(seed)
    model = DalleBart(MINI)
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            nn.init.normal_(parameter, std=0.02)
        elif "layer_norm" in name or "layernorm" in name or re.search(r"\.ln\d\.|final_ln", name):
            nn.init.ones_(parameter)
        else:
            nn.init.normal_(parameter, std=0.02)
    return model.eval().requires_grad_(False)


def min_dalle_models(model: DalleBart) -> tuple[nn.Module, nn.Module]:
    from min_dalle.models import DalleBartDecoder, DalleBartEncoder

    c = model.config
    encoder = DalleBartEncoder(
        layer_count=c.encoder_layers,
        embed_count=c.d_model,
        attention_head_count=c.encoder_attention_heads,
        text_vocab_count=c.encoder_vocab_size,
        text_token_count=c.max_text_length,
        glu_embed_count=c.encoder_ffn_dim,
        device="cpu",
    )
    decoder = DalleBartDecoder(
        image_vocab_count=c.image_vocab_size,
        embed_count=c.d_model,
        attention_head_count=c.decoder_attention_heads,
        glu_embed_count=c.decoder_ffn_dim,
        layer_count=c.decoder_layers,
        device="cpu",
    )
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        ours = {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        state = {k: ours.get(k, torch.ones_like(v)) for k, v in module.state_dict().items()}  # unit scales
        module.load_state_dict(state, strict=True)
    return encoder.eval().requires_grad_(False), decoder.eval().requires_grad_(False)


def text_tokens(count: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.full((count, MINI.max_text_length), PAD)
    for i in range(count):
        n = 5 + i % 12
        tokens[i, 0], tokens[i, n + 1] = START, END
        tokens[i, 1 : n + 1] = torch.randint(4, MINI.encoder_vocab_size, (n,), generator=g)
    return tokens


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


class Ours:
    name = "ours"

    def __init__(self, model: DalleBart) -> None:
        self.model = model

    def start(self, images: int) -> None:
        text = text_tokens(2)
        self.sampler = Sampler(
            self.model,
            capacity=images,
            code_count=MINI.image_vocab_size,
            unconditional_tokens=text[:1]
            .clone()
            .fill_(PAD)
            .index_fill_(1, torch.tensor([0]), START)
            .index_fill_(1, torch.tensor([1]), END),
            pad_token_id=PAD,
        )
        self.rows = [RowRequest(i, 1, SamplingSettings(seed=i)) for i in range(images)]
        self.text = text
        self.encode_s = timed(lambda: self.sampler.add_rows(self.text, self.rows))

    def step(self) -> None:
        self.sampler.step()


class MinDalle:
    name = "min-dalle"

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        self.encoder, self.decoder = encoder, decoder

    @torch.inference_mode()
    def start(self, images: int) -> None:
        c = MINI
        prompt = text_tokens(2)[1]
        text = torch.full((2, c.max_text_length), PAD)
        text[0, :2] = torch.tensor([START, END])
        text[1] = prompt
        started = time.perf_counter()
        encoder_state = self.encoder(text)
        index = [0] * images + [1] * images
        self.text = text[index]
        self.encoder_state = encoder_state[index]
        self.encode_s = time.perf_counter() - started
        self.mask = self.text.not_equal(PAD)[:, None, None, :]
        self.state = torch.zeros((c.decoder_layers, images * 4, c.image_length, c.d_model))
        self.tokens = torch.full((images, c.image_length + 1), 2**14 - 1)
        self.settings = torch.tensor([1.0, 256, 10.0])
        self.i = 0
        torch.manual_seed(0)

    @torch.inference_mode()
    def step(self) -> None:
        i = self.i % MINI.image_length
        self.tokens[:, i + 1], self.state = self.decoder.sample_tokens(
            settings=self.settings,
            attention_mask=self.mask,
            encoder_state=self.encoder_state,
            attention_state=self.state,
            prev_tokens=self.tokens[:, [i]],
            token_index=torch.tensor([i]),
        )
        self.i += 1


def measure(engine: Ours | MinDalle, images: int, *, warmup: int, timed_steps: int) -> tuple[float, float]:
    """(encode seconds, seconds per step), steps timed after `warmup` steps."""
    engine.start(images)
    for _ in range(warmup):
        engine.step()
    started = time.perf_counter()
    for _ in range(timed_steps):
        engine.step()
    return engine.encode_s, (time.perf_counter() - started) / timed_steps


def vqgan_seconds(images: int) -> tuple[float, float]:
    """Our VQGAN (taming Decoder) and min-dalle's VQGanDetokenizer on the same random weights."""
    from min_dalle.models import VQGanDetokenizer as MinVQGan

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        ours = VQGanDetokenizer(VQGanConfig()).eval()
    theirs = MinVQGan().eval()
    theirs.load_state_dict({k: v for k, v in ours.state_dict().items()}, strict=False)
    codes = torch.randint(0, 16384, (images, 256))
    with torch.inference_mode():
        ours.decode_uint8(codes[:1])
        t_ours = timed(lambda: ours.decode_uint8(codes))
        t_theirs = timed(lambda: theirs(False, codes))
    return t_ours, t_theirs


def top1_agreement(reference: DalleBart, other: DalleBart, steps: int) -> float:
    """Teacher-forced: over `steps` positions of one image, how often both models' guided logits
    (same forced history: the reference's own draws) have the same most likely code."""
    text = text_tokens(2)
    uncond = torch.full((1, MINI.max_text_length), PAD)
    uncond[0, :2] = torch.tensor([START, END])
    drawn: list[int] = []
    top: dict[str, list[int]] = {"reference": [], "other": []}
    for name, model in (("reference", reference), ("other", other)):
        sampler = Sampler(
            model, capacity=1, code_count=MINI.image_vocab_size, unconditional_tokens=uncond, pad_token_id=PAD
        )
        prefix = torch.tensor(drawn) if drawn else None
        sampler.add_rows(text, [RowRequest(0, 1, SamplingSettings(seed=0), prefix)])
        for _ in range(steps):
            top[name].append(int(sampler.next_logits()[0].argmax()))
            sampler.step()
        if name == "reference":
            drawn = sampler._tokens[0, :steps].tolist()
    return sum(a == b for a, b in zip(top["reference"], top["other"], strict=True)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="time a few steps and extrapolate to 256")
    parser.add_argument("--images", type=int, nargs="*", default=[1, 4, 9])
    parser.add_argument(
        "--int8", action="store_true", help="also time dynamic int8 Linear weights (opt-in mode)"
    )
    parser.add_argument("--profile", action="store_true", help="profile 8 steps of ours at 1 image")
    parser.add_argument("--no-min-dalle", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, timed_steps = (2, 6) if args.quick else (2, STEPS - 2)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'quick: extrapolated' if args.quick else 'full'}"
    )

    model = random_mini()
    engines: list[Ours | MinDalle] = [Ours(model)]
    if not args.no_min_dalle:
        engines.append(MinDalle(*min_dalle_models(model)))
    if args.int8:
        from generator.quantize import quantize_decoder_int8

        quantized = Ours(quantize_decoder_int8(random_mini()))
        quantized.name = "ours-int8"
        engines.append(quantized)
        steps = 16 if args.quick else STEPS
        agreement = top1_agreement(model, quantized.model, steps)
        print(
            f"int8 vs fp32: teacher-forced top-1 code agreement {100 * agreement:.1f} % over {steps} steps "
            "(random weights: near-flat logits make this a pessimistic figure)"
        )

    vq_s = {}
    for images in args.images:
        vq_ours, vq_theirs = vqgan_seconds(images) if not args.quick or images == 1 else (float("nan"),) * 2
        vq_s[images] = (vq_ours, vq_theirs)
        results = {}
        for engine in engines:
            encode_s, step_s = measure(engine, images, warmup=warmup, timed_steps=timed_steps)
            vq = vq_theirs if engine.name == "min-dalle" else vq_ours
            results[engine.name] = (step_s, encode_s + STEPS * step_s + vq)
        ours_step, ours_e2e = results["ours"]
        for name, (step_s, e2e) in results.items():
            ratio = (
                f"  ×{step_s and results['min-dalle'][0] / step_s:.2f} vs min-dalle"
                if "min-dalle" in results
                else ""
            )
            print(
                f"{images} image(s) {name:10s} decode {1000 * step_s:7.1f} ms/step "
                f"{images / step_s:6.1f} tok/s"
                f"   end to end {e2e:6.1f} s{ratio}"
            )
        print(f"{images} image(s) VQGAN decode: ours {vq_ours:.2f} s, min-dalle {vq_theirs:.2f} s")
        del ours_step, ours_e2e

    if args.profile:
        engine = Ours(model)
        engine.start(1)
        for _ in range(3):
            engine.step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(8):
                engine.step()
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


if __name__ == "__main__":
    main()
