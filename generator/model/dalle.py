"""The model loaded once: prompts + options → image tokens → PIL images.

    model = DalleMini.load("dalle-mini/dalle-mini")        # or a local directory, "mega", a tiny checkpoint
    images = model.render(["a fox in the snow"], JobOptions(images=4, seed=7))[0]

`tokens` gives the 256 codes per image (the worker stores them: variations start from them),
`decode` turns codes into pictures, `new_sampler` gives the step-wise engine for continuous batching.
Image i of a prompt is drawn with `SamplingSettings.for_image(options, i)` (seed ``options.seed + i``),
exactly as the generator's render loop draws a job.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from generator.model.bart import DalleBart
from generator.model.checkpoints import (
    DALLE_FILES,
    DALLE_MINI,
    VQGAN,
    VQGAN_FILES,
    Loaded,
    load_dalle_bart,
    load_vqgan,
)
from generator.model.config import DalleBartConfig
from generator.model.errors import CheckpointError, UnsupportedConfig
from generator.model.layers import WeightFormat
from generator.model.precision import reduce_decoder_weights
from generator.model.sampler import RowRequest, Sampler, SamplingSettings, generate
from generator.model.tokenizer import TextTokenizer
from generator.model.vqgan import VQGanDetokenizer
from jobs.options import JobOptions

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@contextlib.contextmanager
def checkpoint_part(name: str) -> Iterator[None]:
    """Mark a CheckpointError with the checkpoint it came from ("model", "vqgan", "clip", "upscaler")."""
    try:
        yield
    except CheckpointError as exc:
        exc.part = exc.part or name
        raise


class DalleMini:
    def __init__(
        self,
        *,
        bart: DalleBart,
        vqgan: VQGanDetokenizer,
        tokenizer: TextTokenizer,
        loaded: tuple[Loaded, Loaded],
    ) -> None:
        if vqgan.config.n_embed > bart.config.image_vocab_size:
            raise UnsupportedConfig(
                f"the VQGAN has {vqgan.config.n_embed} codes, DalleBart only {bart.config.image_vocab_size}"
            )
        if vqgan.config.grid_count**2 != bart.config.image_length:
            raise UnsupportedConfig(
                f"the VQGAN draws from {vqgan.config.grid_count}² codes, "
                f"DalleBart makes {bart.config.image_length}"
            )
        self.bart = bart
        self.vqgan = vqgan
        self.tokenizer = tokenizer
        self.loaded = loaded
        self.config: DalleBartConfig = bart.config
        self.code_count = vqgan.config.n_embed  # real codes: lm_head rows beyond (padding, start) never drawn

    @classmethod
    def load(
        cls,
        model: str | Path = DALLE_MINI,
        vqgan: str | Path = VQGAN,
        *,
        revision: str | None = None,
        vqgan_revision: str | None = None,
        cache_dir: Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        local_files_only: bool = False,
        decoder_weights: WeightFormat = "float32",
        vqgan_dtype: torch.dtype | str = torch.float32,
    ) -> DalleMini:
        """Load (downloading once if `model`/`vqgan` are hub ids) and convert both checkpoints.

        `decoder_weights` "bfloat16" or "int8" (CPU, float32 `dtype` only) reduces the weights a decoding
        step reads, 2× or 4× fewer bytes; `vqgan_dtype` bfloat16 runs the VQGAN's convolutions in bf16
        (CPUs with AVX512-BF16). Neither is identical to float32: see generator/model/precision.py.
        """
        from generator.model.checkpoints import resolve_checkpoint

        dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
        with checkpoint_part("model"):
            dalle_dir = resolve_checkpoint(
                model,
                files=DALLE_FILES,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        with checkpoint_part("vqgan"):
            vqgan_dir = resolve_checkpoint(
                vqgan,
                files=VQGAN_FILES,
                revision=vqgan_revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        with checkpoint_part("model"):
            bart, bart_loaded = load_dalle_bart(dalle_dir, dtype=dtype, device=device)
            reduce_decoder_weights(bart, decoder_weights)
            bart.decoder.prepare_step()  # on float32 weights: times the CPU's kernels, once
        vqgan_dtype = DTYPES[vqgan_dtype] if isinstance(vqgan_dtype, str) else vqgan_dtype
        with checkpoint_part("vqgan"):
            detokenizer, vqgan_loaded = load_vqgan(vqgan_dir, dtype=vqgan_dtype, device=device)
        with checkpoint_part("model"):
            tokenizer = TextTokenizer.from_pretrained(
                dalle_dir, normalize=bart.config.normalize_text, max_length=bart.config.max_text_length
            )
            if tokenizer.vocab_size > bart.config.encoder_vocab_size + 1:  # the mini: 50265 vs 50264
                raise UnsupportedConfig(
                    f"tokenizer in {dalle_dir} has {tokenizer.vocab_size} tokens, the encoder only "
                    f"{bart.config.encoder_vocab_size}"
                )
        logger.info(
            "loaded DalleBart from %s (%s) and VQGAN from %s (%s); decoding with %s weights (%s decoder "
            "weights%s), VQGAN in %s",
            dalle_dir,
            bart_loaded.source,
            vqgan_dir,
            vqgan_loaded.source,
            str(dtype).removeprefix("torch."),
            decoder_weights,
            f"; step kernels: {bart.decoder.row_kernels}" if decoder_weights == "float32" else "",
            str(vqgan_dtype).removeprefix("torch."),
        )
        return cls(bart=bart, vqgan=detokenizer, tokenizer=tokenizer, loaded=(bart_loaded, vqgan_loaded))

    def new_sampler(self, capacity: int) -> Sampler:
        """A step-wise engine for up to `capacity` images at once (see `generator.model.sampler`)."""
        return Sampler(
            self.bart,
            capacity=capacity,
            code_count=self.code_count,
            unconditional_tokens=self.tokenizer.encode_unconditional(),
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def tokens(
        self,
        prompts: Sequence[str],
        options: JobOptions | Sequence[JobOptions],
        *,
        prefixes: Sequence[torch.Tensor | None] | None = None,
        capacity: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[torch.Tensor]:
        """For each prompt, its images' codes (images, 256), all prompts drawn in one batch.

        `prefixes[p]` (k,) forces the first k codes of every image of prompt p (variations).
        """
        options_list = [options] * len(prompts) if isinstance(options, JobOptions) else list(options)
        if len(options_list) != len(prompts):
            raise ValueError("give one JobOptions, or one per prompt")
        text_tokens = self.tokenizer.encode(list(prompts))
        rows = []
        for p, option in enumerate(options_list):
            prefix = prefixes[p] if prefixes is not None else None
            rows += [
                RowRequest((p, i), p, SamplingSettings.for_image(option, i), prefix)
                for i in range(option.images)
            ]
        sampler = self.new_sampler(capacity or len(rows))
        drawn = generate(sampler, text_tokens, rows, progress=progress)
        return [torch.stack([drawn[(p, i)] for i in range(o.images)]) for p, o in enumerate(options_list)]

    def decode(self, tokens: torch.Tensor) -> list[Image.Image]:
        """Codes (n, 256) → n RGB images (256 × 256 for the f16 VQGAN)."""
        pixels = self.vqgan.decode_uint8(tokens.reshape(-1, self.config.image_length))
        return [Image.fromarray(image.numpy(), mode="RGB") for image in pixels]

    def render(
        self,
        prompts: Sequence[str],
        options: JobOptions | Sequence[JobOptions],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[Image.Image]]:
        """For each prompt, its images."""
        return [self.decode(t) for t in self.tokens(prompts, options, progress=progress)]
