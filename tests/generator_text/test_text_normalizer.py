"""generator.model.text against dalle-mini's own TextNormalizer (see conftest for how it is loaded)."""

import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from generator.model.text import HashtagSplitter, TextNormalizer, WordFrequencyError

from .prompts import PROMPTS


@pytest.fixture
def seeded_reference(reference_normalizer: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """The reference, with the global `random` seeded by the prompt as ours seeds its own."""
    state = random.getstate()

    def normalize(prompt: str) -> str:
        random.seed(prompt)
        return reference_normalizer(prompt)

    yield normalize
    random.setstate(state)


@pytest.fixture(scope="module")
def normalizer(word_frequency_file: Path) -> TextNormalizer:
    return TextNormalizer(word_frequency_file)


@pytest.fixture(scope="module")
def fallback_normalizer() -> TextNormalizer:
    return TextNormalizer(None)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_matches_dalle_mini(
    prompt: str, normalizer: TextNormalizer, seeded_reference: Callable[[str], str]
) -> None:
    assert normalizer(prompt) == seeded_reference(prompt)


def test_matches_dalle_mini_on_random_mixtures(
    normalizer: TextNormalizer, seeded_reference: Callable[[str], str]
) -> None:
    fragments = [piece for prompt in PROMPTS for piece in prompt.split(" ")] + [
        "#", "'", "s", ".", ",", "-", "/", "<", ">", "&amp;", "1,234", "2.5", "😀", "_", "\\", "!!!!",
    ]  # fmt: skip
    rng = random.Random(1234)
    for _ in range(300):
        prompt = rng.choice(["", " "]).join(rng.choices(fragments, k=rng.randint(1, 12)))
        assert normalizer(prompt) == seeded_reference(prompt), prompt


def test_hashtag_splitter_matches_dalle_mini(reference_text: ModuleType, word_frequency_file: Path) -> None:
    reference = reference_text.HashtagProcessor()  # reads word_frequency_file (see conftest)
    splitter = HashtagSplitter.from_file(word_frequency_file)
    rng = random.Random(99)
    pieces = ["sun", "set", "beach", "cat", "s", "'s", "2022", "7", "x", "q", "_", "new", "york", "love"]
    for _ in range(300):
        hashtag = "".join(rng.choices(pieces, k=rng.randint(1, 6)))
        assert splitter(hashtag) == reference(hashtag), hashtag


def test_person_tokens_are_deterministic_per_prompt(normalizer: TextNormalizer) -> None:
    prompts = [f"<person> number {i} with <person>" for i in range(20)]
    first = [normalizer(prompt) for prompt in prompts]
    assert first == [normalizer(prompt) for prompt in prompts]
    assert "<person>" not in "".join(first)


@pytest.mark.parametrize("prompt", [p for p in PROMPTS if "#" not in p])
def test_fallback_changes_nothing_without_hashtags(
    prompt: str, fallback_normalizer: TextNormalizer, seeded_reference: Callable[[str], str]
) -> None:
    assert fallback_normalizer(prompt) == seeded_reference(prompt)


@pytest.mark.parametrize(
    ("prompt", "with_word_list", "without_word_list"),
    [
        ("#sunsetbeach #summer2022", " sunset beach summer 2022", " sunsetbeach summer2022"),
        ("#love_nature", " love nature", " love nature"),
        ("#NewYork at night", " new york at night", " newyork at night"),
        ("a #cat", " a cat", " a cat"),
    ],
)
def test_fallback_keeps_hashtag_words_unsplit(
    prompt: str,
    with_word_list: str,
    without_word_list: str,
    normalizer: TextNormalizer,
    fallback_normalizer: TextNormalizer,
    seeded_reference: Callable[[str], str],
) -> None:
    assert normalizer(prompt) == seeded_reference(prompt) == with_word_list
    assert fallback_normalizer(prompt) == without_word_list


def test_fallback_warns_once_when_built(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="generator.model.text"):
        normalizer = TextNormalizer(None)
        normalizer("#one #two")
        normalizer("#three")
    assert [record.getMessage() for record in caplog.records] == [
        "no enwiki-words-frequency.txt in the checkpoint: hashtags will be kept unsplit "
        "(#sunsetbeach -> sunsetbeach)"
    ]


def test_word_list_is_read_on_first_hashtag_and_only_once(tmp_path: Path) -> None:
    path = tmp_path / "enwiki-words-frequency.txt"
    normalizer = TextNormalizer(path)  # not there yet: nothing is read when built
    assert normalizer("no hashtag here") == " no hashtag here"
    path.write_text("sun 10\nset 9\n", encoding="utf-8")
    assert normalizer("#sunset") == " sun set"
    path.write_text("sunset 10\n", encoding="utf-8")
    assert normalizer("#sunset") == " sun set"


def test_blank_line_in_word_list_is_named(tmp_path: Path) -> None:
    path = tmp_path / "enwiki-words-frequency.txt"
    path.write_text("sun 10\n\nset 9\n", encoding="utf-8")
    with pytest.raises(WordFrequencyError, match=r"enwiki-words-frequency.txt: line 2 is blank"):
        TextNormalizer(path)("#sunset")


def test_empty_word_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enwiki-words-frequency.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(WordFrequencyError, match="empty"):
        HashtagSplitter.from_file(path)


def test_matches_dalle_mini_on_random_unicode(
    normalizer: TextNormalizer, seeded_reference: Callable[[str], str]
) -> None:
    ranges = [
        (0x20, 0x7E),
        (0xA0, 0x17F),
        (0x2000, 0x206F),
        (0x3040, 0x30FF),
        (0x4E00, 0x4E80),
        (0x1F300, 0x1F64F),
    ]
    rng = random.Random(2024)
    for _ in range(200):
        prompt = "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(1, 30)))
        assert normalizer(prompt) == seeded_reference(prompt), ascii(prompt)
