"""``python -m generator render "a prompt" --images 4 --seed 7 --out grid.png [--model DIR --vqgan DIR]``"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from generator.model.checkpoints import DALLE_MINI, VQGAN
from generator.model.errors import CheckpointError
from jobs.errors import Refused
from jobs.options import JobOptions, add_option_arguments, options_from_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m generator", description="Draw pictures with DALL·E mini."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="render one prompt into a grid PNG")
    render.add_argument("prompt")
    add_option_arguments(render, skip=("model",))  # --model names the checkpoint here
    render.add_argument("--out", type=Path, default=Path("grid.png"))
    render.add_argument(
        "--model", default=DALLE_MINI, help=f"hub id, alias (mini, mega) or directory ({DALLE_MINI})"
    )
    render.add_argument("--vqgan", default=VQGAN, help=f"hub id or directory ({VQGAN})")
    render.add_argument("--revision", default=None)
    render.add_argument("--cache-dir", type=Path, default=None)
    render.add_argument("--device", default="cpu")
    render.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    render.add_argument(
        "--decoder-weights",
        default="float32",
        choices=["float32", "bfloat16", "int8"],
        help="CPU fast mode: reduced decoder weights (draws differ from float32)",
    )
    render.add_argument("--vqgan-dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch
    from tqdm import tqdm

    from generator.model.dalle import DTYPES, DalleMini
    from generator.model.grid import make_grid, png_bytes

    try:
        options = JobOptions.parse(options_from_arguments(args))
        started = time.perf_counter()
        model = DalleMini.load(
            args.model,
            args.vqgan,
            revision=args.revision,
            cache_dir=args.cache_dir,
            device=args.device,
            dtype=DTYPES[args.dtype],
            decoder_weights=args.decoder_weights,
            vqgan_dtype=args.vqgan_dtype,
        )
        torch.set_grad_enabled(False)
        with tqdm(total=options.images * model.config.image_length, unit="tok", desc="sampling") as bar:

            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            tokens = model.tokens([args.prompt], options, progress=progress)[0]
        images = model.decode(tokens)
        args.out.write_bytes(png_bytes(make_grid(images)))
    except Refused as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 1
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"wrote {args.out} ({options.images} images, seed {options.seed}, {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
