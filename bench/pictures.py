"""What better pictures cost, beside the 3×3 grid's own render time, in one run, at real sizes with random
weights (no download):

    .venv/bin/python -m bench.pictures            # ~2 minutes on 2 cores
    .venv/bin/python -m bench.pictures --device cuda

- baseline: a 3×3 grid of dalle-mini (d_model 1024, 12+12 layers): text encoding + 256 steps for 9 rows
  (6 steps timed at position 124, the average attention length, extrapolated as bench/model.py --quick) +
  the VQGAN decode of 9 images (one timed, × 9);
- ranking: one CLIP ViT-B/32 pass (openai/clip-vit-base-patch32's config) over the 9 decoded 256-px
  pictures and the prompt, through `ClipRanker.scores` (the checkpoint's processor: resize, crop,
  normalize, tokenize);
- k = 2: the same grid drawn from 18 candidates: 18 rows, 18 decodes and one CLIP pass over 18;
- previews: the VQGAN decodes a grid's previews cost (3 per image: at 1/4, 2/4 and 3/4 of the codes), which
  is why they are off by default on a CPU;
- upscale: Swin2SR x4 (caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr's config) on one 256 × 256 picture
  in 72-px tiles overlapping by 8 (`Upscaler.upscale`), seconds and the process's peak memory growth.

Targets on 2 cores: ranking ≤ 5 % of the 3×3 render; an upscale ≤ 10 s.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from PIL import Image

from bench.model import MINI, Ours, measure, random_bart, sync, timed
from generator.model.bart import DalleBart
from generator.model.clip import ClipRanker
from generator.model.config import VQGanConfig
from generator.model.upscale import Upscaler
from generator.model.vqgan import VQGanDetokenizer

PROMPT = "a watercolor painting of a lighthouse on a cliff at sunset"
STEPS = 256


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def pictures(count: int, size: int = 256) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def random_upscaler(device: torch.device) -> Upscaler:
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    config = Swin2SRConfig(  # the published checkpoint's config.json
        embed_dim=180,
        depths=[6, 6, 6, 6, 6, 6],
        num_heads=[6, 6, 6, 6, 6, 6],
        window_size=8,
        mlp_ratio=2.0,
        upscale=4,
        image_size=64,
        upsampler="nearest+conv",
        resi_connection="1conv",
    )
    torch.manual_seed(0)
    model = Swin2SRForImageSuperResolution(config).to(device).eval().requires_grad_(False)
    return Upscaler(
        model, Swin2SRImageProcessor(do_pad=True, size_divisor=8), directory=None
    )  # no directory: random weights


def random_ranker(device: torch.device) -> ClipRanker:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from generator.testing import _clip_byte_vocab

    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig()).to(device).eval().requires_grad_(False)  # ViT-B/32 sizes
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(),  # 224-px crop, CLIP's mean and std
        tokenizer=CLIPTokenizer(vocab=_clip_byte_vocab(), merges=[], model_max_length=77),
    )
    return ClipRanker(model, processor, directory=None)  # no directory: random weights


def render_seconds(rows: int, model: DalleBart, vqgan_one: float) -> tuple[float, float]:
    """(seconds for `rows` images: encode + 256 steps + decodes, of which the decodes)."""
    [(encode, step, _)] = measure([Ours(model)], rows, quick=True).values()
    decode = vqgan_one * rows
    return encode + step * STEPS + decode, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")

    # the upscaler first: the peak memory it adds is read before the big models exist
    upscaler = random_upscaler(device)
    [picture] = pictures(1)
    upscaler.upscale(pictures(1, size=64)[0])  # warm-up
    before = peak_rss_mib()
    upscale_s = timed(lambda: upscaler.upscale(picture), device)
    upscale_mib = peak_rss_mib() - before

    ranker = random_ranker(device)
    ranker.scores(pictures(2), PROMPT)  # warm-up
    grid = pictures(9)
    rank9_s = min(timed(lambda: ranker.scores(grid, PROMPT), device) for _ in range(3))
    many = pictures(18)
    rank18_s = timed(lambda: ranker.scores(many, PROMPT), device)

    torch.manual_seed(0)
    with torch.device(device):
        vqgan = VQGanDetokenizer(VQGanConfig()).eval()
    codes = torch.randint(0, 16384, (1, 256), device=device)
    with torch.inference_mode():
        vqgan.decode_uint8(codes)
        vqgan_one = timed(lambda: vqgan.decode_uint8(codes), device)
    model = random_bart(MINI, dtype=torch.float32, device=device)
    grid_s, grid_decode_s = render_seconds(9, model, vqgan_one)
    k2_s, _ = render_seconds(18, model, vqgan_one)
    sync(device)

    def row(what: str, seconds: float, note: str = "") -> None:
        print(f"  {what:<48} {seconds:8.2f} s  {seconds / grid_s:7.1%} of the 3×3 render  {note}")

    print(f"baseline  3×3 grid, dalle-mini shapes: {grid_s:.2f} s (VQGAN decodes {grid_decode_s:.2f} s)")
    row("ranking: one CLIP pass over 9 (target ≤ 5 %)", rank9_s)
    row("k = 2: 18 rows + 18 decodes + CLIP over 18", k2_s + rank18_s, f"(+{k2_s + rank18_s - grid_s:.2f} s)")
    row("previews: 3 quarter decodes of the 9 (CPU: off)", 3 * 9 * vqgan_one, "(decodes beside the steps)")
    row(
        "upscale 256 → 1024, Swin2SR x4, 16 tiles",
        upscale_s,
        f"(target ≤ 10 s; +{upscale_mib:.0f} MiB peak)",
    )
    print(f"at {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    main()
