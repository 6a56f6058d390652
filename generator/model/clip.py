"""CLIP ranking: how well each picture matches its prompt, through transformers' `CLIPModel` and the
checkpoint's own processor (image preprocessing and tokenizer; no hand-written CLIP).

    ranker = ClipRanker.load("openai/clip-vit-base-patch32")     # or a local directory
    scores = ranker.scores(images, "a fox in the snow")          # one CLIP pass for the whole grid

A score is the cosine similarity of the image and text embeddings (CLIP's logits before its
``logit_scale``), the prompt as the user typed it, cut to CLIP's 77 tokens by its tokenizer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from generator.model.checkpoints import resolve_checkpoint
from generator.model.hf_checkpoint import (
    SAFETENSORS_FILE,
    check_hf_directory,
    load_strict,
    quiet_transformers,
)

logger = logging.getLogger(__name__)

CLIP = "openai/clip-vit-base-patch32"
CLIP_TEXT_TOKENS = 77
PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer.json")
CLIP_FILES = (
    "config.json",
    SAFETENSORS_FILE,
    *PROCESSOR_FILES,
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)


class ClipRanker:
    def __init__(self, model: torch.nn.Module, processor: object, directory: Path) -> None:
        self.model = model
        self.processor = processor
        self.directory = directory

    @classmethod
    def load(
        cls,
        spec: str | Path = CLIP,
        *,
        revision: str | None = None,
        cache_dir: Path | None = None,
        device: torch.device | str = "cpu",
        local_files_only: bool = False,
    ) -> ClipRanker:
        from transformers import CLIPModel, CLIPProcessor

        directory = resolve_checkpoint(
            spec, files=CLIP_FILES, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        check_hf_directory(directory, model_type="clip", what="CLIP", files=PROCESSOR_FILES)
        with quiet_transformers():
            model = load_strict(CLIPModel, directory, what="CLIP", device=device)
            processor = CLIPProcessor.from_pretrained(str(directory), local_files_only=True)
        logger.info("loaded CLIP from %s", directory)
        return cls(model, processor, directory)

    @torch.inference_mode()
    def scores(self, images: Sequence[Image.Image], prompt: str) -> list[float]:
        """Cosine similarity of each image with `prompt`, all images in one batch."""
        inputs = self.processor(  # type: ignore[operator]
            text=[prompt],
            images=list(images),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=CLIP_TEXT_TOKENS,
        )
        device = next(self.model.parameters()).device
        output = self.model(**{k: v.to(device) for k, v in inputs.items()})
        # CLIPModel returns unit-length embeddings: their dot product is the cosine
        similarity = output.image_embeds.float() @ output.text_embeds.float().T
        return [float(s) for s in similarity[:, 0].cpu()]
