"""Tiny tokenizer files in the published dalle-mini layout, for tests and tiny checkpoints.

`dalle-mini/dalle-mini` on the Hugging Face hub ships BART's tokenizer as `vocab.json`, `merges.txt`,
`tokenizer.json`, `special_tokens_map.json` and `tokenizer_config.json`, plus the word-frequency list
`enwiki-words-frequency.txt` that the text normalizer uses to split hashtags. `write_tiny_tokenizer`
trains a small byte-level BPE with the `tokenizers` library and writes the same five files, so tests
load them through the production path (`generator.model.tokenizer.TextTokenizer.from_pretrained`);
`write_tiny_word_frequency` writes a short word list in the published format ("word count" per line,
most frequent first).
"""

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer, processors

# BART's special tokens in BART's id order: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
TINY_VOCAB_SIZE = 400  # 256 byte symbols + 5 special tokens + ~139 merges

# A corpus shaped like normalized prompts, so common words become single tokens.
DEFAULT_CORPUS = (
    " a photo of a cat sitting on a red sofa",
    " an astronaut riding a horse on the moon, digital art",
    " a painting of a sunset over the mountains by the sea",
    " a dog wearing sunglasses at the beach",
    " an oil painting of a city at night in the rain",
    " a bowl of soup that looks like a monster, made of plastic",
    " the eiffel tower in the snow, 4k, trending on artstation",
    " a person playing the guitar in a forest",
) * 8

# Rank order matters (cost = log(rank)); the counts are only for the published format.
DEFAULT_WORDS = (
    "the", "of", "and", "in", "a", "to", "is", "on", "at", "by", "for", "with", "new", "art",
    "sun", "set", "sunset", "beach", "moon", "light", "city", "night", "love", "summer", "winter",
    "cat", "cats", "dog", "dogs", "photo", "photography", "day", "life", "good", "vibes", "travel",
    "nature", "food", "happy", "york", "s", "i", "it", "t", "o", "e", "n", "r", "l",
)  # fmt: skip


def write_tiny_tokenizer(
    directory: Path, *, corpus: Iterable[str] | None = None, vocab_size: int = TINY_VOCAB_SIZE
) -> None:
    """Train a byte-level BPE on `corpus` and write BART-style tokenizer files into `directory`.

    Deterministic for a given corpus. The vocabulary size is `len(json.load(vocab.json))`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()  # add_prefix_space=False, as BART's
    bpe.train_from_iterator(
        list(DEFAULT_CORPUS if corpus is None else corpus),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    # BART's tokenizer.json wraps every sequence as <s> … </s>.
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True
    )
    bpe.save_model(str(directory))  # vocab.json, merges.txt
    bpe.save(str(directory / "tokenizer.json"))
    special_tokens_map = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    tokenizer_config = {
        **special_tokens_map,
        "errors": "replace",
        "add_prefix_space": False,
        "trim_offsets": True,
        "model_max_length": 1024,
        "tokenizer_class": "DalleBartTokenizer",  # as saved by dalle-mini; loaded as BartTokenizerFast
    }
    _write_json(directory / "special_tokens_map.json", special_tokens_map)
    _write_json(directory / "tokenizer_config.json", tokenizer_config)


def write_tiny_word_frequency(directory: Path, *, words: Iterable[str] | None = None) -> Path:
    """Write `enwiki-words-frequency.txt` ("word count" per line, most frequent first); return its path."""
    ranked = list(DEFAULT_WORDS if words is None else words)
    path = directory / "enwiki-words-frequency.txt"
    path.write_text(
        "".join(f"{word} {1_000_000 // (rank + 1)}\n" for rank, word in enumerate(ranked)), encoding="utf-8"
    )
    return path


def _write_json(path: Path, value: Mapping[str, object]) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
