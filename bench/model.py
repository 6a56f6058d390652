"""Decode speed of our DalleBart sampler beside min-dalle's torch classes on the same random weights.

    .venv/bin/python -m bench.model --quick            # minutes on 2 cores: timed steps, extrapolated to 256
    .venv/bin/python -m bench.model                    # full 256-step runs, end to end
    .venv/bin/python -m bench.model --quick --int8 --bf16 --profile
    .venv/bin/python -m bench.model --mega --device cuda --dtype bfloat16 --images 9    # on a GPU

(Run it as a module: bench/queue.py would shadow the standard library's queue module for a script in bench/.)

Weights: dalle-mini's shapes (d_model 1024, 12+12 layers, 16 heads, ffn 2730, text vocab 50264, image vocab
16384 + 1; --mega: 2048, 24+24, 32, 4096, 50272, 16415 + 1) drawn at random in torch (normal, std 0.02 as
dalle-mini's init), no download. min-dalle gets the very same tensors and runs with the same threads/dtype.
Per image count: 2 warm-up steps, then timed steps (synchronized on a GPU), the engines taking turns.
"decode" is the time of one step for the whole batch and image tokens per second; "end to end" is
text encoding + 256 steps + VQGAN decode.
--quick times 6 steps starting at position 124 (the average attention length) and extrapolates to 256, and
times the VQGAN on one image, scaled by the image count. The ratio is min-dalle's time / ours.
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

from generator.model.bart import DalleBart
from generator.model.config import MEGA_CONFIG, MINI_CONFIG, DalleBartConfig, VQGanConfig
from generator.model.sampler import RowRequest, Sampler, SamplingSettings
from generator.model.vqgan import VQGanDetokenizer

MINI, MEGA = MINI_CONFIG, MEGA_CONFIG
CODES = 16384
STEPS = 256
PAD, START, END = 1, 0, 2
QUICK_POSITION = 124


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - started


def random_bart(
    config: DalleBartConfig,
    *,
    dtype: torch.dtype,
    device: torch.device,
    seed: int = 0,
    std: float = 0.02,
    norm_noise: float = 0.0,
) -> DalleBart:
    """Random weights of `config`'s shapes: normal(`std`) (0.02: dalle-mini's init, near-flat logits),
    layer-norm scales 1 + normal(`norm_noise`) and biases normal(`std`)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = DalleBart(config)
    for name, parameter in model.named_parameters():
        if "layer_norm" in name or "layernorm" in name or re.search(r"\.ln\d\.|final_ln", name):
            if name.endswith("weight"):
                nn.init.normal_(parameter, mean=1.0, std=norm_noise) if norm_noise else nn.init.ones_(
                    parameter
                )
            else:
                nn.init.normal_(parameter, std=std)
        else:
            nn.init.normal_(parameter, std=std)
    return model.to(dtype).eval().requires_grad_(False)


def min_dalle_models(model: DalleBart, device: torch.device) -> tuple[nn.Module, nn.Module]:
    from min_dalle.models import DalleBartDecoder, DalleBartEncoder

    c = model.config
    with torch.device(device):
        encoder = DalleBartEncoder(
            layer_count=c.encoder_layers, embed_count=c.d_model,
            attention_head_count=c.encoder_attention_heads,
            text_vocab_count=c.encoder_vocab_size, text_token_count=c.max_text_length,
            glu_embed_count=c.encoder_ffn_dim, device=str(device),
        )  # fmt: skip
        decoder = DalleBartDecoder(
            image_vocab_count=c.image_vocab_size, embed_count=c.d_model,
            attention_head_count=c.decoder_attention_heads, glu_embed_count=c.decoder_ffn_dim,
            layer_count=c.decoder_layers, device=str(device),
        )  # fmt: skip
    dtype = next(model.parameters()).dtype
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        ours = {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        module.to(dtype)
        state = {k: ours.get(k, torch.ones_like(v)) for k, v in module.state_dict().items()}  # unit scales
        module.load_state_dict(state, strict=True)
    return encoder.eval().requires_grad_(False), decoder.eval().requires_grad_(False)


def text_tokens(config: DalleBartConfig, device: torch.device) -> torch.Tensor:
    """(2, T): the empty prompt and a 12-token prompt."""
    tokens = torch.full((2, config.max_text_length), PAD)
    tokens[0, :2] = torch.tensor([START, END])
    tokens[1, :14] = torch.tensor(
        [START, *torch.randint(4, 50000, (12,), generator=torch.Generator().manual_seed(0)), END]
    )
    return tokens.to(device)


class Ours:
    def __init__(self, model: DalleBart, name: str = "ours") -> None:
        self.model, self.name = model, name
        self.device = next(model.parameters()).device

    def start(self, images: int, position: int) -> None:
        text = text_tokens(self.model.config, self.device)
        self.sampler = Sampler(self.model, capacity=images, code_count=CODES, unconditional_tokens=text[:1],
                               pad_token_id=PAD)  # fmt: skip
        rows = [RowRequest(i, 1, SamplingSettings(seed=i)) for i in range(images)]
        self.encode_s = timed(lambda: self.sampler.add_rows(text, rows), self.device)
        if position:  # bench only: pretend the rows are at `position` (cache contents do not change the cost)
            with torch.inference_mode():
                self.sampler._state.positions[:images] = position
            for row in self.sampler._rows:
                row.position = position

    def step(self) -> None:
        self.sampler.step()


class MinDalle:
    name = "min-dalle"

    def __init__(self, encoder: nn.Module, decoder: nn.Module, config: DalleBartConfig) -> None:
        self.encoder, self.decoder, self.config = encoder, decoder, config
        self.device = next(decoder.parameters()).device

    @torch.inference_mode()
    def start(self, images: int, position: int) -> None:
        c, device = self.config, self.device
        text = text_tokens(c, device)  # [empty prompt, prompt], as min-dalle orders them
        sync(device)
        started = time.perf_counter()
        encoder_state = self.encoder(text)
        index = [0] * images + [1] * images
        self.encoder_state = encoder_state[index]
        sync(device)
        self.encode_s = time.perf_counter() - started
        self.mask = text[index].not_equal(PAD)[:, None, None, :]
        dtype = next(self.decoder.parameters()).dtype
        self.state = torch.zeros((c.decoder_layers, images * 4, c.image_length, c.d_model), device=device,
                                 dtype=dtype)  # fmt: skip
        self.tokens = torch.full((images, c.image_length + 1), 2**14 - 1, device=device)
        self.settings = torch.tensor([1.0, 256, 10.0], device=device)
        self.indices = torch.arange(c.image_length, device=device)
        self.i = position
        torch.manual_seed(0)

    @torch.inference_mode()
    def step(self) -> None:
        i = self.i % self.config.image_length
        self.tokens[:, i + 1], self.state = self.decoder.sample_tokens(
            settings=self.settings, attention_mask=self.mask, encoder_state=self.encoder_state,
            attention_state=self.state, prev_tokens=self.tokens[:, [i]], token_index=self.indices[[i]],
        )  # fmt: skip
        self.i += 1


def measure(
    engines: list[Ours | MinDalle], images: int, *, quick: bool
) -> dict[str, tuple[float, float, float]]:
    """name → (encode seconds, mean seconds per step, fastest step). Each step is timed on its own and the
    engines take turns step by step, so a busy shared machine slows them alike."""
    for engine in engines:
        engine.start(images, QUICK_POSITION if quick else 0)
        for _ in range(2):
            engine.step()
    steps: dict[str, list[float]] = {engine.name: [] for engine in engines}
    for _ in range(6 if quick else STEPS - 2):
        for engine in engines:
            steps[engine.name].append(timed(engine.step, engine.device))
    return {e.name: (e.encode_s, sum(s := steps[e.name]) / len(s), min(s)) for e in engines}


def vqgan_seconds(images: int, device: torch.device) -> tuple[float, float]:
    """Our VQGAN (taming's Decoder) and min-dalle's VQGanDetokenizer, same random weights, fp32."""
    from min_dalle.models import VQGanDetokenizer as MinVQGan

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), torch.device(device):
        ours = VQGanDetokenizer(VQGanConfig()).eval()
        theirs = MinVQGan().eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    codes = torch.randint(0, CODES, (images, 256), device=device)
    with torch.inference_mode():
        ours.decode_uint8(codes[:1])
        return (timed(lambda: ours.decode_uint8(codes, batch_count=images), device),
                timed(lambda: theirs(False, codes), device))  # fmt: skip


def top1_agreement(reference: DalleBart, other: DalleBart, steps: int) -> float:
    """Teacher-forced: over `steps` positions of one image, how often both models' guided logits
    (same forced history: the reference's own draws) put the same code first."""
    text = text_tokens(reference.config, torch.device("cpu"))
    drawn: list[int] = []
    top: dict[str, list[int]] = {"reference": [], "other": []}
    for name, model in (("reference", reference), ("other", other)):
        sampler = Sampler(
            model, capacity=1, code_count=CODES, unconditional_tokens=text[:1], pad_token_id=PAD
        )
        prefix = torch.tensor(drawn) if drawn else None
        sampler.add_rows(text, [RowRequest(0, 1, SamplingSettings(seed=0), prefix)])
        for _ in range(steps):
            top[name].append(int(sampler.next_logits()[0].argmax()))
            sampler.step()
        if name == "reference":
            drawn = sampler._state.tokens[0, :steps].tolist()
    return sum(a == b for a, b in zip(top["reference"], top["other"], strict=True)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="time 6 steps and extrapolate to 256")
    parser.add_argument("--images", type=int, nargs="*", default=[1, 4, 9])
    parser.add_argument("--mega", action="store_true", help="dalle-mega's shapes instead of dalle-mini's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--int8", action="store_true", help="also time int8 decoder weights (CPU opt-in mode)"
    )
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 weights (CPU opt-in mode)")
    parser.add_argument(
        "--profile", action="store_true", help="profile 8 steps of ours at the last image count"
    )
    parser.add_argument("--no-min-dalle", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = MEGA if args.mega else MINI
    print(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads), {args.dtype}, "
          f"{'mega' if args.mega else 'mini'} shapes, "
          f"{'quick: extrapolated' if args.quick else 'full runs'}")  # fmt: skip

    model = random_bart(config, dtype=dtype, device=device)
    engines: list[Ours | MinDalle] = [Ours(model)]
    if not args.no_min_dalle:
        engines.append(MinDalle(*min_dalle_models(model, device), config))
    if args.int8:
        from generator.model.quantize import quantize_decoder_int8

        engines.append(
            Ours(quantize_decoder_int8(random_bart(config, dtype=dtype, device=device)), "ours-int8")
        )
    if args.bf16:
        engines.append(Ours(random_bart(config, dtype=torch.bfloat16, device=device), "ours-bf16"))
    for engine in engines[1 + (not args.no_min_dalle) :]:
        steps = 16 if args.quick else STEPS
        agreement = top1_agreement(model, engine.model, steps)  # type: ignore[union-attr]
        print(f"{engine.name} vs {args.dtype}: teacher-forced top-1 code agreement {100 * agreement:.1f} % "
              f"over {steps} steps (random weights give near-flat logits: a pessimistic figure)")  # fmt: skip

    vq_one = vqgan_seconds(1, device) if args.quick else None
    for images in args.images:
        vq_ours, vq_theirs = (
            (vq_one[0] * images, vq_one[1] * images) if vq_one else vqgan_seconds(images, device)
        )
        results = {}
        for name, (encode_s, step_s, best_s) in measure(engines, images, quick=args.quick).items():
            vq = vq_theirs if name == "min-dalle" else vq_ours
            results[name] = (step_s, best_s, encode_s + STEPS * step_s + vq)
        for name, (step_s, best_s, e2e) in results.items():
            ratio = ""
            if "min-dalle" in results and name != "min-dalle":
                theirs = results["min-dalle"]
                ratio = (f"   ×{theirs[0] / step_s:.2f} decode (×{theirs[1] / best_s:.2f} fastest steps), "
                         f"×{theirs[2] / e2e:.2f} end to end vs min-dalle")  # fmt: skip
            print(f"{images} image(s) {name:9s} decode {1000 * step_s:7.1f} ms/step "
                  f"(fastest {1000 * best_s:6.1f})"
                  f" {images / step_s:6.1f} tok/s   end to end {e2e:6.1f} s{ratio}")  # fmt: skip
        print(f"{images} image(s) VQGAN decode: ours {vq_ours:.2f} s, min-dalle {vq_theirs:.2f} s"
              f"{' (1 image × count)' if vq_one else ''}")  # fmt: skip

    if args.profile:
        engine = Ours(model)
        engine.start(args.images[-1], QUICK_POSITION)
        for _ in range(3):
            engine.step()
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profile:
            for _ in range(8):
                engine.step()
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(profile.key_averages().table(sort_by=sort, row_limit=14))


if __name__ == "__main__":
    main()
