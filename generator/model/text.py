"""dalle-mini's prompt normalizer, ported rule for rule.

Reference: dalle-mini 0.1.5, `src/dalle_mini/model/text.py` (`TextNormalizer`, `HashtagProcessor`).
The published checkpoints were trained on captions passed through that normalizer (their config says
`normalize_text: true`), so prompts must go through the same rules in the same order, quirks
included; tests/generator_text/ compares this module with the real one on a varied prompt set.

Two deliberate differences, neither visible in the output:
- The word-frequency list is read from a path we are given (the checkpoint directory), lazily and
  once, instead of downloaded from the hub when the normalizer is built.
- `<person>` placeholders are replaced by a random choice seeded from the prompt itself, so one prompt
  always normalizes to one string (dalle-mini draws from the global `random`, seeded the same way in
  the tests).

Fallback without the word list: a hashtag keeps its words as written ("#sunsetbeach" → "sunsetbeach",
"#summer2022" → "summer2022"); only the separators the real splitter also splits on ("_") become
spaces. Guessing word boundaries without the frequencies would invent splits the model never saw;
BPE still tokenizes the joined word. A warning is logged once, when the normalizer is built.
"""

import html
import logging
import math
import random
import re
import threading
from collections.abc import Mapping
from pathlib import Path

import emoji
import ftfy
from unidecode import unidecode

from generator.model.errors import CheckpointError

logger = logging.getLogger(__name__)

WORD_FREQUENCY_FILENAME = "enwiki-words-frequency.txt"

# Weights are the words' Wikipedia counts, as in dalle-mini.
_PERSON_WORDS = ("a person", "someone", "somebody")
_PERSON_WEIGHTS = (282265, 121194, 12219)

# Placeholders that shelter ".", "'" and "/" from the punctuation rules; made of letters so the
# repeated-character rule cannot touch them.
_TEMP = "xtokx"
_DOT = f"{_TEMP}dot{_TEMP}"
_QUOTE = f"{_TEMP}quote{_TEMP}"
_SLASH = f"{_TEMP}slash{_TEMP}"

_PERSON_GROUP = re.compile(r"<person>([,\s]*(and)*[,\s]*<person>)+")
_WIKI_REF_START = re.compile(r"\A\s*\[\d+\]")
_WIKI_REF_END = re.compile(r"\[\d+\]\s*\Z")
_HTML_TAG = re.compile(r"<[^<]+?>")
_URL = re.compile(r"http\S+")
_THOUSANDS_COMMA = re.compile(r"(\d),(\d{3})")
_DOT_BETWEEN_WORDS = re.compile(r"(\w)\.(\w)")
_CONTRACTION_QUOTE = re.compile(r"'(?=(?:[stdm]|ll|re|ve)\b)")  # 's 't 'd 'm 'll 're 've
_DATE_SLASH = re.compile(r"(\d)/(\d)")
_HYPHEN_BETWEEN_WORDS = re.compile(r"(\w)-(\w)")
_SPACED_SYMBOL = re.compile(r"([%&/$*])")
_HASHTAG = re.compile(r"#(\w+)")
_IGNORED_CHAR = re.compile(r"[_#\\]")
_QUOTE_CHAR = re.compile(r"""['"`]""")
_PUNCTUATION = re.compile(r"[()[\].,|:;?!=+~\-/{}]")
_REPEATED_CHAR = re.compile(r"(\D)(\1{3,})")  # 4+ times: "viii" stays
_QUOTE_RUN = re.compile(r'(\s*"+\s*)+')
_COMMA_RUN = re.compile(r"(\s*,+\s*)+")
_WHITESPACE = re.compile(r"\s+")
_HASHTAG_SEPARATOR = re.compile(r"[^a-zA-Z0-9']+")


class WordFrequencyError(CheckpointError, ValueError):
    """The word-frequency file is not a list of "word [count]" lines; replace it with the published one."""


class HashtagSplitter:
    """Splits a run of letters into the likeliest words (wordninja's dynamic programme).

    A word of rank r in the frequency list costs log(r); the split with the least total cost wins.
    """

    def __init__(self, word_cost: Mapping[str, float]) -> None:
        if not word_cost:
            raise WordFrequencyError("the word-frequency list is empty")
        self._word_cost = word_cost
        self._max_word_length = max(len(word) for word in word_cost)

    @classmethod
    def from_file(cls, path: Path) -> "HashtagSplitter":
        word_cost: dict[str, float] = {}
        for rank, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            fields = line.split()
            if not fields:
                raise WordFrequencyError(f"{path}: line {rank + 1} is blank")
            # A repeated word keeps its last (higher) cost, as dalle-mini's dict comprehension does.
            word_cost[fields[0]] = math.log(rank + 1)
        return cls(word_cost)

    def __call__(self, hashtag: str) -> str:
        return " ".join(word for part in _HASHTAG_SEPARATOR.split(hashtag) for word in self._split(part))

    def _split(self, text: str) -> list[str]:
        lowered = text.lower()
        # best[end] = (cost, length of the last word) of the cheapest split of text[:end]; unknown
        # words cost inf, and equal costs go to the shorter last word, as in dalle-mini's min().
        best: list[tuple[float, int]] = [(0.0, 0)]
        for end in range(1, len(text) + 1):
            first_start = max(0, end - self._max_word_length)
            best.append(
                min(
                    (best[start][0] + self._word_cost.get(lowered[start:end], math.inf), end - start)
                    for start in range(first_start, end)
                )
            )
        # Walk back from the end, gluing a word onto the next one when that one is "'s", or when
        # both sides of the cut are digits (numbers stay whole).
        words: list[str] = []
        end = len(text)
        while end > 0:
            length = best[end][1]
            word = text[end - length : end]
            glued = bool(words) and (
                words[-1] == "'s" or (text[end - 1].isdigit() and words[-1][0].isdigit())
            )
            if word != "'" and glued:
                words[-1] = word + words[-1]
            else:
                words.append(word)
            end -= length
        words.reverse()
        return words


def _keep_hashtag_words(hashtag: str) -> str:
    """The fallback splitter: separators become spaces, words stay as written."""
    return " ".join(part for part in _HASHTAG_SEPARATOR.split(hashtag) if part)


class TextNormalizer:
    """dalle-mini's `TextNormalizer`: `normalizer(prompt)` returns the text the model was trained on.

    `word_frequency_file` is the checkpoint's `enwiki-words-frequency.txt`; it is read on the first
    hashtag. Without it, hashtags keep their words unsplit (see the module docstring).
    """

    def __init__(self, word_frequency_file: Path | None) -> None:
        self._word_frequency_file = word_frequency_file
        self._splitter: HashtagSplitter | None = None
        self._splitter_lock = threading.Lock()
        if word_frequency_file is None:
            logger.warning(
                "no %s in the checkpoint: hashtags will be kept unsplit (#sunsetbeach -> sunsetbeach)",
                WORD_FREQUENCY_FILENAME,
            )

    def __call__(self, text: str) -> str:
        rng = random.Random(text)  # one prompt, one normalization
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text))  # twice, as CLIP: "&amp;amp;" happens
        text = emoji.demojize(text)  # before unidecode, which would drop the emoji
        text = unidecode(text).lower()
        text = _replace_person_tokens(text, rng)  # CC12M's "<PERSON>"
        text = _WIKI_REF_END.sub("", _WIKI_REF_START.sub("", text))  # WIT's "[12]"
        text = _HTML_TAG.sub(" ", text)
        text = _URL.sub("", text)
        text = _THOUSANDS_COMMA.sub(r"\1\2", _THOUSANDS_COMMA.sub(r"\1\2", text))  # twice: 1,234,567
        # Shelter the dots, apostrophes and slashes worth keeping from the punctuation rule below.
        text = _DOT_BETWEEN_WORDS.sub(rf"\1{_DOT}\2", text)
        text = _CONTRACTION_QUOTE.sub(_QUOTE, text)
        text = _DATE_SLASH.sub(rf"\1{_SLASH}\2", text)
        text = _HYPHEN_BETWEEN_WORDS.sub(r"\1 \2", text)
        text = _SPACED_SYMBOL.sub(r" \1 ", text)
        text = _HASHTAG.sub(lambda match: self._split_hashtag(match.group(1)), text)
        text = _IGNORED_CHAR.sub(" ", text)
        text = _QUOTE_CHAR.sub(' " ', text)
        text = _PUNCTUATION.sub(",", text)
        text = text.replace(_DOT, ".").replace(_QUOTE, "'").replace(_SLASH, "/")
        text = _REPEATED_CHAR.sub(r"\1", text)
        text = _QUOTE_RUN.sub(' " ', text)
        text = _COMMA_RUN.sub(", ", text)
        text = _WHITESPACE.sub(" ", text)
        text = _strip_outer_commas(text)
        return f" {text}"  # BART's BPE marks a word start with a leading space

    def _split_hashtag(self, hashtag: str) -> str:
        if self._word_frequency_file is None:
            return _keep_hashtag_words(hashtag)
        with self._splitter_lock:
            if self._splitter is None:
                self._splitter = HashtagSplitter.from_file(self._word_frequency_file)
        return self._splitter(hashtag)


def _replace_person_tokens(text: str, rng: random.Random) -> str:
    text = _PERSON_GROUP.sub(" people ", text)
    while "<person>" in text:
        word = rng.choices(_PERSON_WORDS, weights=_PERSON_WEIGHTS)[0]
        text = text.replace("<person>", f" {word} ", 1)
    return text


def _strip_outer_commas(text: str) -> str:
    text = text.strip()
    text = text.removesuffix(",")
    text = text.removeprefix(",")
    return text.strip()
