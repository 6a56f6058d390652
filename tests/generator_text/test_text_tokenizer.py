"""generator.model.tokenizer on tiny BPE files in the published layout, against BART as dalle-mini calls
it."""

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from transformers import BartTokenizerFast

from generator.model.errors import CheckpointNotFound, CorruptCheckpoint
from generator.model.tokenizer import TOKENIZER_FILENAMES, TextTokenizer, TokenizerFilesMissingError
from generator.model.tokenizer_files import write_tiny_tokenizer, write_tiny_word_frequency

from .prompts import PROMPTS

LONG_PROMPT = "an oil painting of a city at night in the rain with a dog and a cat " * 8
BOS, PAD, EOS = 0, 1, 2  # BART's ids


@pytest.fixture(scope="module")
def checkpoint_directory(tokenizer_directory: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenizer files plus the word-frequency list, as in dalle-mini/dalle-mini."""
    directory = tmp_path_factory.mktemp("checkpoint")
    shutil.copytree(tokenizer_directory, directory, dirs_exist_ok=True)
    write_tiny_word_frequency(directory)
    return directory


@pytest.fixture(scope="module")
def tokenizer(checkpoint_directory: Path) -> TextTokenizer:
    return TextTokenizer.from_pretrained(checkpoint_directory, normalize=True)


@pytest.fixture(scope="module")
def raw_tokenizer(checkpoint_directory: Path) -> TextTokenizer:
    return TextTokenizer.from_pretrained(checkpoint_directory, normalize=False)


def dalle_mini_input_ids(directory: Path, texts: list[str], max_length: int = 64) -> torch.Tensor:
    """What dalle-mini's DalleBartProcessor gives the model; its DalleBartTokenizer is BartTokenizerFast."""
    bart = BartTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    return bart(texts, return_tensors="pt", padding="max_length", truncation=True, max_length=max_length)[
        "input_ids"
    ]


def test_encode_matches_dalle_mini_processor(
    tokenizer: TextTokenizer, checkpoint_directory: Path, reference_normalizer: Callable[[str], str]
) -> None:
    prompts = [p for p in PROMPTS if "<person>" not in p.lower()] + [LONG_PROMPT]
    expected = dalle_mini_input_ids(checkpoint_directory, [reference_normalizer(p) for p in prompts])
    encoded = tokenizer.encode(prompts)
    assert encoded.dtype == torch.long
    assert encoded.shape == (len(prompts), 64)
    assert torch.equal(encoded, expected)


def test_encode_matches_the_bare_bpe(tokenizer: TextTokenizer, checkpoint_directory: Path) -> None:
    """Independently of transformers: tokenizer.json's own encoding, cut to 63 + </s>, padded."""
    bpe = Tokenizer.from_file(str(checkpoint_directory / "tokenizer.json"))
    prompts = [*PROMPTS[:20], LONG_PROMPT]
    for prompt, row in zip(prompts, tokenizer.encode(prompts).tolist(), strict=True):
        ids = bpe.encode(tokenizer.normalize(prompt)).ids
        assert ids[0] == BOS and ids[-1] == EOS
        ids = [*ids[:63], EOS] if len(ids) > 64 else ids
        assert row == ids + [PAD] * (64 - len(ids)), prompt


def test_tokenizer_json_agrees_with_vocab_and_merges(
    tokenizer: TextTokenizer, raw_tokenizer: TextTokenizer, tmp_path: Path
) -> None:
    """The three files describe one tokenizer: BART built from vocab.json + merges.txt alone agrees."""
    write_tiny_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    texts = [tokenizer.normalize(p) for p in PROMPTS] + [LONG_PROMPT, "UPPER case, ünïcödé 東京 🌈"]
    assert torch.equal(raw_tokenizer.encode(texts), dalle_mini_input_ids(tmp_path, texts))


def test_truncation_keeps_end_of_sequence_last(tokenizer: TextTokenizer) -> None:
    (row,) = tokenizer.encode([LONG_PROMPT]).tolist()
    assert len(row) == 64
    assert row[0] == BOS and row[-1] == EOS
    assert PAD not in row
    assert row.count(EOS) == 1


def test_padding_fills_after_end_of_sequence(tokenizer: TextTokenizer) -> None:
    short, longer = tokenizer.encode(["cat", "a photo of a cat on the beach"]).tolist()
    end = short.index(EOS)
    assert short[0] == BOS
    assert short[end + 1 :] == [PAD] * (63 - end)
    assert longer.index(EOS) > end
    assert tokenizer.pad_token_id == PAD and tokenizer.bos_token_id == BOS and tokenizer.eos_token_id == EOS


def test_unconditional_is_the_empty_string_not_normalized(
    tokenizer: TextTokenizer, raw_tokenizer: TextTokenizer, checkpoint_directory: Path
) -> None:
    unconditional = tokenizer.encode_unconditional()
    assert unconditional.shape == (1, 64) and unconditional.dtype == torch.long
    assert unconditional.tolist() == [[BOS, EOS] + [PAD] * 62]
    assert torch.equal(unconditional, dalle_mini_input_ids(checkpoint_directory, [""]))
    assert torch.equal(unconditional, raw_tokenizer.encode([""]))
    # Normalized, "" would become " " (one more token): the unconditional row skips the normalizer.
    assert not torch.equal(unconditional, tokenizer.encode([""]))
    unconditional[0, 0] = 99  # callers get their own copy
    assert tokenizer.encode_unconditional()[0, 0] == BOS


def test_normalization_only_when_asked(
    tokenizer: TextTokenizer, raw_tokenizer: TextTokenizer, reference_normalizer: Callable[[str], str]
) -> None:
    prompt = "A CAFÉ &amp; #sunsetbeach!!!!"
    assert tokenizer.is_normalizing and not raw_tokenizer.is_normalizing
    assert tokenizer.normalize(prompt) == reference_normalizer(prompt) == " a cafe & sunset beach"
    assert raw_tokenizer.normalize(prompt) == prompt
    assert torch.equal(tokenizer.encode([prompt]), raw_tokenizer.encode([reference_normalizer(prompt)]))
    assert not torch.equal(tokenizer.encode([prompt]), raw_tokenizer.encode([prompt]))


def test_without_word_list_hashtags_stay_whole(tokenizer_directory: Path) -> None:
    fallback = TextTokenizer.from_pretrained(tokenizer_directory, normalize=True)
    assert fallback.normalize("#sunsetbeach at #NewYork") == " sunsetbeach at newyork"


def test_max_length_comes_from_config(checkpoint_directory: Path) -> None:
    short = TextTokenizer.from_pretrained(checkpoint_directory, normalize=True, max_length=16)
    assert short.max_length == 16
    assert short.encode_unconditional().shape == (1, 16)
    encoded = short.encode([LONG_PROMPT, "cat"])
    assert encoded.shape == (2, 16)
    assert encoded[0, -1] == EOS
    expected = dalle_mini_input_ids(
        checkpoint_directory, [short.normalize(LONG_PROMPT), " cat"], max_length=16
    )
    assert torch.equal(encoded, expected)


def test_batch_rows_do_not_depend_on_each_other(tokenizer: TextTokenizer) -> None:
    prompts = PROMPTS[:12]
    together = tokenizer.encode(prompts)
    for i in random.Random(5).sample(range(len(prompts)), 4):
        assert torch.equal(together[i : i + 1], tokenizer.encode([prompts[i]]))


def test_one_string_is_refused_and_no_prompts_give_no_rows(tokenizer: TextTokenizer) -> None:
    with pytest.raises(TypeError, match="sequence of prompts"):
        tokenizer.encode("a cat")
    assert tokenizer.encode([]).shape == (0, 64)


@pytest.mark.parametrize("missing", [(name,) for name in TOKENIZER_FILENAMES] + [TOKENIZER_FILENAMES[:2]])
def test_missing_tokenizer_files_are_named(
    missing: tuple[str, ...], tokenizer_directory: Path, tmp_path: Path
) -> None:
    shutil.copytree(tokenizer_directory, tmp_path, dirs_exist_ok=True)
    for name in missing:
        (tmp_path / name).unlink()
    with pytest.raises(TokenizerFilesMissingError) as caught:
        TextTokenizer.from_pretrained(tmp_path, normalize=True)
    assert caught.value.missing == missing
    assert caught.value.directory == tmp_path
    message = str(caught.value)
    assert str(tmp_path) in message and all(name in message for name in missing)
    assert isinstance(caught.value, CheckpointNotFound) and isinstance(caught.value, FileNotFoundError)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        TokenizerFilesMissingError, match=r"vocab\.json, merges\.txt, tokenizer\.json missing from"
    ):
        TextTokenizer.from_pretrained(tmp_path / "nowhere", normalize=False)


def test_tiny_tokenizer_files_are_deterministic_and_in_the_published_layout(
    tokenizer_directory: Path, tmp_path: Path
) -> None:
    write_tiny_tokenizer(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"
    ]  # fmt: skip
    for name in names:
        assert (tmp_path / name).read_bytes() == (tokenizer_directory / name).read_bytes(), name


def test_tiny_tokenizer_from_a_custom_corpus(tmp_path: Path) -> None:
    write_tiny_tokenizer(tmp_path, corpus=["zebra zebra zebra quokka quokka"] * 4, vocab_size=280)
    zebra = Tokenizer.from_file(str(tmp_path / "tokenizer.json")).token_to_id("Ġzebra")
    tokenizer = TextTokenizer.from_pretrained(tmp_path, normalize=False)
    assert tokenizer.vocab_size <= 280
    assert tokenizer.encode([" zebra"]).tolist()[0][:3] == [BOS, zebra, EOS]


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_corrupt_tokenizer_file_is_a_corrupt_checkpoint(
    name: str, tokenizer_directory: Path, tmp_path: Path
) -> None:
    shutil.copytree(tokenizer_directory, tmp_path, dirs_exist_ok=True)
    (tmp_path / name).write_text('{"version": "1.0", "trunc', encoding="utf-8")
    with pytest.raises(CorruptCheckpoint, match="cannot load the tokenizer files in"):
        TextTokenizer.from_pretrained(tmp_path, normalize=False)
