"""Prompts → BART token ids, as dalle-mini's `DalleBartProcessor` makes them.

Reference: dalle-mini 0.1.5 `src/dalle_mini/model/processor.py`: normalize (when the checkpoint's
config says `normalize_text`), then `BartTokenizerFast(texts, padding="max_length", truncation=True,
max_length=max_text_length)`. The tokenizer is the checkpoint's own (`vocab.json`, `merges.txt`,
`tokenizer.json`), so each row is `<s> … </s>` then `<pad>` up to 64; on truncation `</s>` stays last.
The unconditional row for super-conditioning is the empty string, tokenized without normalization.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BartTokenizerFast, PreTrainedTokenizerBase

from generator.model.errors import CheckpointNotFound, CorruptCheckpoint
from generator.model.text import WORD_FREQUENCY_FILENAME, TextNormalizer

MAX_TEXT_LENGTH = 64  # dalle-mini's config.max_text_length for mini and mega
TOKENIZER_FILENAMES = ("vocab.json", "merges.txt", "tokenizer.json")


class TokenizerFilesMissingError(CheckpointNotFound, FileNotFoundError):
    """The checkpoint directory lacks tokenizer files; download the checkpoint again or copy them in."""

    def __init__(self, directory: Path, missing: Sequence[str]) -> None:
        self.directory = directory
        self.missing = tuple(missing)
        super().__init__(
            f"tokenizer file(s) {', '.join(self.missing)} missing from {directory}: "
            "download the checkpoint again or copy them from the published model repository"
        )


class TextTokenizer:
    """Normalizes and tokenizes prompts into fixed-length rows of token ids."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        normalizer: TextNormalizer | None,
        max_length: int = MAX_TEXT_LENGTH,
    ) -> None:
        self._tokenizer = tokenizer
        self._normalizer = normalizer
        self.max_length = max_length
        self.pad_token_id: int = tokenizer.pad_token_id
        self.bos_token_id: int = tokenizer.bos_token_id
        self.eos_token_id: int = tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)  # the encoder's embedding must have at least these rows
        self._unconditional = self._tokenize([""])

    @classmethod
    def from_pretrained(
        cls, path: Path, *, normalize: bool, max_length: int = MAX_TEXT_LENGTH
    ) -> "TextTokenizer":
        """Load the tokenizer files of the checkpoint in `path`.

        `normalize` and `max_length` come from the checkpoint's config (`normalize_text`,
        `max_text_length`). The normalizer splits hashtags with `path/enwiki-words-frequency.txt`
        when present.
        """
        missing = [name for name in TOKENIZER_FILENAMES if not (path / name).is_file()]
        if missing:
            raise TokenizerFilesMissingError(path, missing)
        try:
            tokenizer = BartTokenizerFast.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # json and tokenizers raise bare ValueError/Exception on bad files
            raise CorruptCheckpoint(
                f"cannot load the tokenizer files in {path} ({exc}): download the checkpoint again"
            ) from exc
        normalizer = None
        if normalize:
            word_frequency_file = path / WORD_FREQUENCY_FILENAME
            normalizer = TextNormalizer(word_frequency_file if word_frequency_file.is_file() else None)
        return cls(tokenizer, normalizer=normalizer, max_length=max_length)

    @property
    def is_normalizing(self) -> bool:
        return self._normalizer is not None

    def normalize(self, prompt: str) -> str:
        """The text the model reads for `prompt`: itself when the checkpoint does not normalize."""
        return prompt if self._normalizer is None else self._normalizer(prompt)

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids of the normalized prompts: (len(prompts), max_length), padded with `pad_token_id`."""
        if isinstance(prompts, str):
            raise TypeError("encode takes a sequence of prompts, not one string")
        return self._tokenize([self.normalize(prompt) for prompt in prompts])

    def encode_unconditional(self) -> torch.Tensor:
        """Token ids of the empty prompt, not normalized: (1, max_length)."""
        return self._unconditional.clone()

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.empty((0, self.max_length), dtype=torch.long)
        encoding = self._tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return encoding["input_ids"]
