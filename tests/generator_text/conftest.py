"""Fixtures for the text side: dalle-mini's own normalizer as the reference, tiny tokenizer files.

The reference is the real `dalle_mini/model/text.py` from the PyPI package `dalle-mini==0.1.5`
(installed with `pip install --no-deps dalle-mini==0.1.5`, see pyproject's dev extra). Only that
one file is loaded, by path: the package's `__init__` imports flax and wandb, which we do not install.
Its word-frequency download is pointed at a local file; our own code is never patched.
"""

import importlib.metadata
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from generator.model.tokenizer_files import write_tiny_tokenizer, write_tiny_word_frequency


def _load_reference_text_module() -> ModuleType:
    try:
        distribution = importlib.metadata.distribution("dalle-mini")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the reference is missing: pip install --no-deps dalle-mini==0.1.5")
    path = Path(str(distribution.locate_file("dalle_mini/model/text.py")))
    spec = importlib.util.spec_from_file_location("dalle_mini_reference_text", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        # Its regexes are written as non-raw strings ("\s"); harmless, but a warning when compiled.
        warnings.filterwarnings("ignore", message="invalid escape sequence", category=DeprecationWarning)
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference_text() -> ModuleType:
    return _load_reference_text_module()


@pytest.fixture(scope="session")
def word_frequency_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_word_frequency(tmp_path_factory.mktemp("words"))


@pytest.fixture(scope="session")
def reference_normalizer(reference_text: ModuleType, word_frequency_file: Path) -> Callable[[str], str]:
    """dalle-mini's `TextNormalizer`, reading `word_frequency_file` instead of the hub's copy."""

    def local_hub_download(repo_id: str, filename: str) -> str:
        assert (repo_id, filename) == ("dalle-mini/dalle-mini", "enwiki-words-frequency.txt")
        return str(word_frequency_file)

    reference_text.hf_hub_download = local_hub_download
    return reference_text.TextNormalizer()


@pytest.fixture(scope="session")
def tokenizer_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    write_tiny_tokenizer(directory)
    return directory
