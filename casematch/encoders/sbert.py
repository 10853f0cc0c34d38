"""sentence-transformers models: torch fp32, bf16 autocast, or the transformer on ONNX Runtime."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from casematch.encoders.models import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL_NAME,
    canonical_model_name,
    resolve_model_path,
    windows,
)
from casematch.encoders.runtime import choose_runtime
from casematch.errors import ConfigError, MissingDependencyError


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded once, offline unless downloads are allowed."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL_NAME,
        *,
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        allow_download: bool = False,
        runtime: str = "auto",
    ) -> None:
        # The runtime is not part of the name: bf16 and ONNX vectors are near-identical to
        # fp32 ones (cosine >= 0.9999), so indexes built with any of them stay compatible.
        self._name = canonical_model_name(model)
        self.runtime = choose_runtime(runtime, device=device)
        self.batch_size = batch_size
        if not allow_download:
            # Library users get the embedded default with no network, as promised.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            # faiss first: torch and faiss share libgomp, and whichever is imported first
            # decides thread settings; keep torch's defaults intact.
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
        self._model_dir = Path(path)
        self._onnx: Any = None
        if _ONE_THREAD:
            serve_queries_on_one_thread()
        if self.runtime == "onnx":
            self._onnx = self._load_onnx(self._model_dir, forced=runtime == "onnx")
            if self._onnx is None:
                self.runtime = "fp32"

    def with_runtime(self, runtime: str) -> SentenceTransformerEncoder:
        """The same loaded model encoding with another runtime (for the runtime trial)."""
        other = copy.copy(self)
        other.runtime = choose_runtime(runtime)
        other._onnx = None
        if other.runtime == "onnx":
            other._onnx = self._onnx or self._load_onnx(self._model_dir, forced=True)
        return other

    def query_bundle(self) -> Path:
        """The cached bundle a query needs without torch (`casematch.encoders.bundle`).

        Exported from this model the first time (seconds, once per model); then only
        checked. Raises what a forced onnx runtime raises when it cannot be exported.
        """
        from casematch.encoders import bundle

        folder = bundle.cached_bundle_dir(self._name)
        fingerprint = bundle.source_fingerprint(self._model_dir)
        found = bundle.read_bundle(folder, self._name)
        if (found is not None and found.get("fingerprint") == fingerprint
                and found.get("version") == bundle.BUNDLE_VERSION):
            return folder
        onnx = self._onnx or self._load_onnx(self._model_dir, forced=True)
        tokenizer = self._tokenizer
        settings = {
            "model": self._name,
            "max_seq_length": self._window + 2,
            "dimension": self._dimension,
            "do_lower_case": bool(getattr(self._model[0], "do_lower_case", False)),
            "pad_id": int(tokenizer.pad_token_id),
            "pad_token": str(tokenizer.pad_token),
            "fingerprint": fingerprint,
        }
        bundle.write_bundle(folder, onnx_path=onnx.path,
                            tokenizer_json=tokenizer.backend_tokenizer.to_str(),
                            settings=settings)
        return folder

    def _load_onnx(self, model_dir: Path, *, forced: bool) -> Any:
        """The ONNX transformer, or None (with a warning) where "auto" cannot use it."""
        from casematch.encoders.onnx import OnnxTransformer, supports

        if not forced and not supports(model_dir):
            return None
        try:
            return OnnxTransformer(self._model, model_dir)
        except ImportError as exc:
            if forced:
                raise MissingDependencyError(
                    f"runtime onnx needs onnxruntime and onnx ({exc}): pip install onnxruntime onnx"
                ) from exc
            reason: Exception = exc
        except Exception as exc:  # the exporter and onnxruntime raise many kinds
            if forced:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"cannot run {self._name} with ONNX Runtime: {exc}") from exc
            reason = exc
        logging.getLogger(__name__).warning(
            "encoding with torch fp32: the ONNX runtime is unavailable (%s)", reason)
        return None

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
        return windows(text, encoded["offset_mapping"], self._window)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx is not None:
            return self._encode_onnx(list(texts), progress=progress)
        import torch

        # One call for everything: sentence-transformers sorts by length only within a
        # call, which saves padding (42% slower when fed batch by batch, measured on
        # mixed-length case texts while casematch was designed).
        with contextlib.ExitStack() as stack:
            if self.runtime == "bf16":
                # Matmuls in bf16, accumulation and normalisation in fp32: the output is
                # cast back to float32 below, so callers never see bf16.
                stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.runtime == "bf16":
            # Renormalise in fp32: bf16 rounding leaves norms off by ~1e-3, and inner
            # product is a cosine only for unit vectors.
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        return vectors


    def _encode_onnx(self, texts: list[str], *, progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        # Longest first, as sentence-transformers does within a call: batches of similar
        # length pad little, and a memory problem shows on the first batch, not the last.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        starts: Iterable[int] = range(0, len(texts), self.batch_size)
        if progress:  # a query is one text: no progress bar object per search
            starts = tqdm(starts, desc="Batches")
        for start in starts:
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._onnx.encode_batch([texts[i] for i in rows])
        return vectors


# Set by `serve_queries_on_one_thread` before torch is loaded: the encoder applies it when
# (and only if) it loads torch, so a process that never needs torch never imports it.
_ONE_THREAD = False


def serve_queries_on_one_thread() -> None:
    """Run torch on one thread in a process that answers queries.

    A query is one short text: splitting its small matmuls over two OpenMP threads saves
    little, and when anything else holds a core the threads spin-wait on each other at
    every layer. Measured on this 2-core machine beside a busy process: query embedding
    p50 492 ms on two threads, 22 ms on one (benchmarks/RESULTS.md, "Query threads"). A
    responder gets its parallelism from answering several queries at once instead.
    """
    global _ONE_THREAD
    _ONE_THREAD = True
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
