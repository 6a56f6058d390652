"""`bot.slack.options`: /imagine text → prompt + raw options, forgiving about how options are typed."""

import pytest

from bot.slack.options import USAGE, HelpRequested, ImagineText, parse_imagine_text
from jobs import errors
from jobs.options import JobOptions


@pytest.mark.parametrize(
    ("text", "prompt", "options"),
    [
        ("a red square", "a red square", {}),
        ("a cat --images 4 --seed 7", "a cat", {"images": "4", "seed": "7"}),
        ("--images=4 a cat", "a cat", {"images": "4"}),
        ("a cat images=4 seed=7", "a cat", {"images": "4", "seed": "7"}),
        ("a cat -n 4", "a cat", {"images": "4"}),
        ("a cat —images 4 –seed 7", "a cat", {"images": "4", "seed": "7"}),  # autocorrected dashes
        ("a cat —-images 4", "a cat", {"images": "4"}),
        ("a cat --guidance 7,5 --temperature 0.8", "a cat", {"guidance_scale": "7.5", "temperature": "0.8"}),
        ("a cat --top-k 64 --top_p 0.9", "a cat", {"top_k": "64", "top_p": "0.9"}),
        ("a cat --TOPK 64", "a cat", {"top_k": "64"}),
        ("a --seed 3 cat in a hat", "a cat in a hat", {"seed": "3"}),
        ("a cat --seed −1", "a cat", {"seed": "-1"}),  # U+2212 minus in a value
        ("a cat --seed 3 --seed 3", "a cat", {"seed": "3"}),
        ("cats &amp; dogs &lt;3", "cats & dogs <3", {}),  # Slack's escaping undone
        ("“a cat in a hat” --images 2", "a cat in a hat", {"images": "2"}),
        ('"a cat"', "a cat", {}),
        ('"a cat" and "a dog"', '"a cat" and "a dog"', {}),
        ("a cat — in a hat", "a cat — in a hat", {}),  # a dash on its own is punctuation
        ("a -10 degree day, E=mc2, a t-shirt, -ish", "a -10 degree day, E=mc2, a t-shirt, -ish", {}),
        ("  a \u00a0 cat\n--images 3  ", "a cat", {"images": "3"}),
        ("--images 4", "", {"images": "4"}),  # empty prompt is clean_prompt's to refuse
    ],
)
def test_parses(text: str, prompt: str, options: dict[str, str]) -> None:
    assert parse_imagine_text(text) == ImagineText(prompt=prompt, options=options)


def test_options_are_what_job_options_parse_reads() -> None:
    parsed = parse_imagine_text("a fox —images 2 seed=9 -g 3 --temp 0.5 --top-k 32 --top-p 0.8")
    options = JobOptions.parse(parsed.options)
    assert (options.images, options.seed, options.guidance_scale) == (2, 9, 3.0)
    assert (options.temperature, options.top_k, options.top_p) == (0.5, 32, 0.8)


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("a cat --size 4", errors.UnknownOption, "`--size`"),
        ("a cat —colour red", errors.UnknownOption, "`—colour`"),
        ("a cat --images", errors.BadOption, "--images needs a value, e.g. `--images 4`"),
        ("a cat --seed --images 2", errors.BadOption, "--seed needs a value"),
        ("a cat --seed 1 --seed 2", errors.BadOption, "--seed is given twice (1 and 2)"),
    ],
)
def test_refuses_with_usage(text: str, error: type[errors.BadOption], words: str) -> None:
    with pytest.raises(error) as refused:
        parse_imagine_text(text)
    assert words in str(refused.value)
    assert str(refused.value).endswith(USAGE)


@pytest.mark.parametrize("text", ["--help", "a cat -h", "—help"])
def test_help(text: str) -> None:
    with pytest.raises(HelpRequested) as asked:
        parse_imagine_text(text)
    assert str(asked.value) == USAGE
    assert isinstance(asked.value, errors.Refused)


def test_bad_values_are_left_to_job_options() -> None:
    parsed = parse_imagine_text("a cat --images 12")
    assert parsed.options == {"images": "12"}
    with pytest.raises(errors.ImagesOutOfRange):
        JobOptions.parse(parsed.options)
