"""Decode speed of our DalleBart sampler beside min-dalle's torch classes on the same random weights.

    .venv/bin/python -m bench.model --quick --images 1 9   # minutes on 2 cores: timed steps, extrapolated
    .venv/bin/python -m bench.model                    # full 256-step runs, end to end
    .venv/bin/python -m bench.model --quick --images 1 9 --profile --fast-weights bfloat16
    .venv/bin/python -m bench.model --mega --device cuda --dtype bfloat16 --images 9    # on a GPU

(Run it as a module: bench/queue.py would shadow the standard library's queue module for a script in bench/.)

Weights: dalle-mini's shapes (d_model 1024, 12+12 layers, 16 heads, ffn 2730, text vocab 50264, image vocab
16384 + 1; --mega: 2048, 24+24, 32, 4096, 50272, 16415 + 1) drawn at random in torch (normal, std 0.02 as
dalle-mini's init), no download. min-dalle gets the very same tensors and runs with the same threads/dtype.
Engines, per image count, in one run: ours in float32 (its step kernels timed at load:
generator/model/kernels.py); on a CPU the fast modes (bfloat16 and int8 decoder weights, a bfloat16 VQGAN
where the CPU has AVX512-BF16 or AMX: generator/model/precision.py); min-dalle; and the floor: the float32
weights a step reads, streamed by matrix-vector products (gemv), its pass timed as an engine; and the same
matrices times the step's rows through the chosen kernels ("products alone"), which splits our multiple of
the floor into the products' own and the rest of the step.
2 warm-up steps, then timed steps (synchronized on a GPU), the engines taking turns step by step, so a
busy shared machine slows them alike.
"decode" is the time of one step for the whole batch and image tokens per second; "end to end" is
text encoding + 256 steps + VQGAN decode.
--quick times 6 steps starting at position 124 (the average attention length) and extrapolates to 256, and
times the VQGAN on one image, scaled by the image count. The ratio is min-dalle's time / ours.
Then the fast mode's fidelity (bench/fidelity.py) at the init and at a peaked weight scale, and the bf16
VQGAN's PSNR; --profile: where the time of a step goes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import re
import time
from collections.abc import Callable

import torch
from torch import nn

from bench.fidelity import psnr, teacher_forced_fidelity
from generator.model.bart import DalleBart
from generator.model.config import MEGA_CONFIG, MINI_CONFIG, DalleBartConfig, VQGanConfig
from generator.model.layers import Float32Rows, WeightFormat
from generator.model.precision import fast_cpu_supported, reduce_decoder_weights
from generator.model.sampler import RowRequest, Sampler, SamplingSettings
from generator.model.vqgan import VQGanDetokenizer

MINI, MEGA = MINI_CONFIG, MEGA_CONFIG
CODES = 16384
STEPS = 256
PAD, START, END = 1, 0, 2
QUICK_POSITION = 124
MEAN_TV_BAR, P99_TV_BAR = 0.02, 0.1  # the fidelity a fast mode must meet to be a default
# weight scales of the fidelity figures: (label, std, layer-norm scale noise)
SCALES = (("init scale (std 0.02, near-flat logits)", 0.02, 0.0),
          ("peaked scale (std 0.1, layer norms ±0.1)", 0.1, 0.1))  # fmt: skip


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
    engines: list[Ours | MinDalle | Floor | Products], images: int, *, quick: bool
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


def float32_step_rows(model: DalleBart) -> list[Float32Rows]:
    """The float32 matrices a step multiplies: the layers' fused step weights and lm_head's rows of the
    real codes, as the decoder holds them (with their chosen kernels)."""
    model.decoder.prepare_step()
    layers = model.decoder.decoder_layers
    rows = [w for layer in layers if layer.step_weights for w in layer.step_weights.all()]
    return [r for r in [*rows, model.decoder.lm_float32] if isinstance(r, Float32Rows)]


class Floor:
    """The weight-streaming floor of a float32 step: every matrix the step reads (the fused step weights
    and lm_head's rows of the real codes) times a vector, one pass over each weight by ``torch.mv`` (MKL's
    gemv, the matrix-vector product). Timed as an engine among the others, so it sees the same machine;
    bytes ÷ time is the stream rate."""

    name = "floor"

    def __init__(self, model: DalleBart) -> None:
        self.device = next(model.parameters()).device
        self.weights = [rows.weight for rows in float32_step_rows(model)]
        self.nbytes = sum(w.numel() * w.element_size() for w in self.weights)
        self.vectors = {w.shape[1]: torch.randn(w.shape[1], device=self.device) for w in self.weights}
        self.encode_s = 0.0

    def start(self, images: int, position: int) -> None:
        pass

    def step(self) -> None:
        for weight in self.weights:
            torch.mv(weight, self.vectors[weight.shape[1]])


class Products:
    """The float32 step's matrix products alone: its step weights and lm_head's rows times the step's rows
    (2 per image), through the kernels the decoder chose, back to back. Beside the whole step it splits our
    multiple of the floor into the products' own and the rest (attention, layer norms, copies, sampling,
    dispatch)."""

    name = "products"

    def __init__(self, model: DalleBart) -> None:
        self.device = next(model.parameters()).device
        self.rows = float32_step_rows(model)
        self.encode_s = 0.0

    def start(self, images: int, position: int) -> None:
        width = {r.weight.shape[1] for r in self.rows}
        self.inputs = {k: torch.randn(2 * images, k, device=self.device) for k in width}

    def step(self) -> None:
        for rows in self.rows:
            rows(self.inputs[rows.weight.shape[1]])


def vqgan_models(device: torch.device) -> tuple[VQGanDetokenizer, VQGanDetokenizer, nn.Module]:
    """Our VQGAN in float32 and in bfloat16 and min-dalle's, the same random weights."""
    from min_dalle.models import VQGanDetokenizer as MinVQGan

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), torch.device(device):
        ours = VQGanDetokenizer(VQGanConfig()).eval().requires_grad_(False)
        theirs = MinVQGan().eval().requires_grad_(False)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, copy.deepcopy(ours).to(torch.bfloat16), theirs


def vqgan_seconds(
    models: tuple[VQGanDetokenizer, VQGanDetokenizer, nn.Module], images: int, device: torch.device
) -> tuple[float, float, float]:
    """Seconds to decode `images` random code grids: ours float32, ours bfloat16, min-dalle's."""
    ours, ours_bf16, theirs = models
    codes = torch.randint(0, CODES, (images, 256), device=device)
    with torch.inference_mode():
        ours.decode_uint8(codes[:1])
        ours_bf16.decode_uint8(codes[:1])
        return (timed(lambda: ours.decode_uint8(codes, batch_count=images), device),
                timed(lambda: ours_bf16.decode_uint8(codes, batch_count=images), device),
                timed(lambda: theirs(False, codes), device))  # fmt: skip


def fidelity_lines(config: DalleBartConfig, weight_format: WeightFormat, *, quick: bool) -> list[str]:
    """Teacher-forced fidelity of `weight_format` decoder weights at both weight scales (bench.fidelity)."""
    steps = 128 if quick else STEPS
    text = text_tokens(config, torch.device("cpu"))
    lines = []
    for label, std, norm_noise in SCALES:
        reference = random_bart(config, dtype=torch.float32, device=torch.device("cpu"), std=std,
                                norm_noise=norm_noise)  # fmt: skip
        other = reduce_decoder_weights(copy.deepcopy(reference), weight_format)
        figures = teacher_forced_fidelity(reference, other, text, code_count=CODES, rows=1, steps=steps)
        verdict = "meets" if figures.mean_tv <= MEAN_TV_BAR and figures.p99_tv <= P99_TV_BAR else "FAILS"
        lines.append(f"  {label:<34} {figures}: {verdict} the bar (mean ≤ 0.02, p99 ≤ 0.1)")
    return lines


def profile_table(engine: Ours, images: int, steps: int = 6) -> str:
    """Where a step's time goes: self CPU time per op, ms per step."""
    engine.start(images, QUICK_POSITION)
    for _ in range(3):
        engine.step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(steps):
            engine.step()
    events = sorted(profile.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [f"  {engine.name} at {images} image(s): {total / 1000 / steps:.1f} ms/step of op time"]
    for event in events[:8]:
        share = event.self_cpu_time_total / total
        rows.append(f"    {event.key:<52} {event.self_cpu_time_total / 1000 / steps:6.2f} ms/step "
                    f"{100 * share:5.1f} %  {event.count // steps:4d} calls")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="time 6 steps and extrapolate to 256")
    parser.add_argument("--images", type=int, nargs="*", default=[1, 4, 9])
    parser.add_argument("--mega", action="store_true", help="dalle-mega's shapes instead of dalle-mini's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--fast-weights", nargs="*", default=["bfloat16", "int8"],
                        choices=["bfloat16", "int8"],
                        help="the fast modes' decoder weights (CPU; default both)")  # fmt: skip
    parser.add_argument("--no-fidelity", action="store_true", help="skip the fidelity figures")
    parser.add_argument("--profile", action="store_true", help="where the time goes at each image count")
    parser.add_argument("--no-min-dalle", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = MEGA if args.mega else MINI
    cpu_fast = device.type == "cpu" and dtype == torch.float32
    fast_vqgan = "bfloat16" if fast_cpu_supported() else "float32"  # as IMAGINE_VQGAN_DTYPE=auto picks
    print(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads), {args.dtype}, "
          f"{'mega' if args.mega else 'mini'} shapes, "
          f"{'quick: extrapolated' if args.quick else 'full runs'}"
          + (f"; fast modes: {' and '.join(args.fast_weights)} decoder weights, {fast_vqgan} VQGAN"
             if cpu_fast else "")
          + (" (no AVX512-BF16: the VQGAN stays float32)" if cpu_fast and not fast_cpu_supported() else "")
          )  # fmt: skip

    model = random_bart(config, dtype=dtype, device=device)
    model.decoder.prepare_step()
    print(f"{args.dtype} step kernels, timed on these weights: {model.decoder.row_kernels}")
    engines: list[Ours | MinDalle | Floor | Products] = [Ours(model, args.dtype)]
    for weight_format in args.fast_weights if cpu_fast else []:
        fast = reduce_decoder_weights(random_bart(config, dtype=dtype, device=device), weight_format)
        engines.append(Ours(fast, f"fast-{weight_format.replace('bfloat16', 'bf16')}"))
    if not args.no_min_dalle:
        engines.append(MinDalle(*min_dalle_models(model, device), config))
    floor = Floor(model) if device.type == "cpu" else None
    products = Products(model) if device.type == "cpu" else None
    engines += [floor, products] if floor and products else []

    vq_models = vqgan_models(device)
    vq_one = vqgan_seconds(vq_models, 1, device) if args.quick else None
    for images in args.images:
        vq = tuple(t * images for t in vq_one) if vq_one else vqgan_seconds(vq_models, images, device)
        vq_fast = vq[1] if fast_vqgan == "bfloat16" else vq[0]
        results = {}
        for name, (encode_s, step_s, best_s) in measure(engines, images, quick=args.quick).items():
            vq_s = vq[2] if name == "min-dalle" else vq_fast if name.startswith("fast") else vq[0]
            results[name] = (step_s, best_s, encode_s + STEPS * step_s + vq_s)
        floor_s = results.pop(floor.name)[0] if floor else None
        products_s = results.pop(products.name)[0] if products else None
        if floor and floor_s:
            print(f"{images} image(s) floor: a step reads {floor.nbytes / 1e6:.0f} MB of float32 weights, "
                  f"streamed by matrix-vector products (gemv) at {floor.nbytes / floor_s / 1e9:.1f} GB/s: "
                  f"{1000 * floor_s:.1f} ms/step")  # fmt: skip
        if floor_s and products and products_s:
            rest_s = results[args.dtype][0] - products_s
            print(f"{images} image(s) {args.dtype} step split: its {len(products.rows)} products alone at "
                  f"{2 * images} rows {1000 * products_s:.1f} ms (×{products_s / floor_s:.2f} the floor), "
                  f"the rest (attention, layer norms, copies, sampling, dispatch) {1000 * rest_s:.1f} ms "
                  f"(×{rest_s / floor_s:.2f})")  # fmt: skip
        for name, (step_s, best_s, e2e) in results.items():
            ratio = ""
            if "min-dalle" in results and name != "min-dalle":
                theirs = results["min-dalle"]
                ratio = (f"   ×{theirs[0] / step_s:.2f} decode (×{theirs[1] / best_s:.2f} fastest steps), "
                         f"×{theirs[2] / e2e:.2f} end to end vs min-dalle")  # fmt: skip
            if floor_s and name != "min-dalle":
                ratio += f"; ×{step_s / floor_s:.2f} the floor"
            print(f"{images} image(s) {name:9s} decode {1000 * step_s:7.1f} ms/step "
                  f"(fastest {1000 * best_s:6.1f})"
                  f" {images / step_s:6.1f} tok/s   end to end {e2e:6.1f} s{ratio}")  # fmt: skip
        print(f"{images} image(s) VQGAN decode: ours {vq[0]:.2f} s, bfloat16 {vq[1]:.2f} s, "
              f"min-dalle {vq[2]:.2f} s{' (1 image × count)' if vq_one else ''}")  # fmt: skip

    if cpu_fast and not args.no_fidelity:
        print("fidelity vs float32, teacher-forced along float32's draws "
              "(guidance 10, temperature 1, top-k 256):")  # fmt: skip
        for weight_format in args.fast_weights:
            note = " (also the int8 mode's steps of more than 2 images)" if weight_format == "bfloat16" else (
                " (steps of up to 2 images)")  # fmt: skip
            print(f" {weight_format} decoder weights{note}:")
            for line in fidelity_lines(config, weight_format, quick=args.quick):  # type: ignore[arg-type]
                print(line)
        codes = torch.randint(
            0, CODES, (2 if args.quick else 8, 256), generator=torch.Generator().manual_seed(1)
        )
        decibels = psnr(vq_models[0], vq_models[1], codes)
        print(f" bfloat16 VQGAN: PSNR {decibels:.1f} dB over {len(codes)} random code grids (bar: ≥ 40 dB)")

    if args.profile:
        print("where the time goes (torch.profiler, self CPU time per op):")
        for images in args.images:
            for engine in engines:
                if isinstance(engine, Ours):
                    print(profile_table(engine, images))


if __name__ == "__main__":
    main()
