"""The model's transformer run by ONNX Runtime; tokenizer and pooling stay sentence-transformers'.

sentence-transformers' own `backend="onnx"` goes through optimum, which cannot share a venv
with the sentence-transformers casematch needs (optimum-onnx pins an older transformers).
So the transformer is exported once per model with torch's exporter, fused by ONNX
Runtime's own transformer optimizer, cached on disk, and run by onnxruntime; tokenization
still calls the loaded model's `tokenize()`, so the inputs are exactly the ones torch sees.
The vectors match torch fp32 to cosine 1.0 (benchmarks/RESULTS.md, "Encoder runtimes").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from casematch.encoders.bundle import cache_dir, onnx_session, pool
from casematch.errors import ConfigError

log = logging.getLogger(__name__)

# Bumped when the exported graph changes shape, so stale cache entries are not reused.
EXPORT_VERSION = 3
# Largest difference in the last hidden state allowed between the fused graph and the plain
# export on the sample texts; a fusion that changes results is not used.
FUSION_TOLERANCE = 1e-4
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PIPELINE = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
)


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def supports(model_dir: Path) -> bool:
    """Whether the model is transformer -> mean pooling -> normalise, the graph run here."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        types = tuple(module["type"] for module in modules)
        pooling_dir = model_dir / next(m["path"] for m in modules if m["type"] == _PIPELINE[1])
        pooling = json.loads((pooling_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration):
        return False
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode_") and on}
    return types == _PIPELINE and modes == {"pooling_mode_mean_tokens"}


def _features(model: Any, texts: list[str]) -> Any:
    # `preprocess` replaced `tokenize` in sentence-transformers 6; both give torch tensors.
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    return preprocess(texts)


def _cache_key(model_dir: Path) -> str:
    import onnxruntime
    import torch

    digest = hashlib.sha256()
    digest.update(f"{EXPORT_VERSION}|{torch.__version__}|{onnxruntime.__version__}".encode())
    for path in sorted(model_dir.glob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _export(model: Any, target: Path) -> None:
    """Trace the model's transformer into `target`, atomically (readers never see half)."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    # Two texts of different lengths, so padding and the mask are part of the traced graph.
    sample = _features(model, ["casematch export", "a second, longer sample text to pad against"])
    args = tuple(sample[name] for name in _INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    transformer = model[0].auto_model.eval()
    attention = transformer.config._attn_implementation
    try:
        # Traced with the plain attention ops: the SDPA trace ran slower (measured: 3,300 vs
        # 4,000 tokens/s in batches, 8 vs 6 ms per query), and the plain ops are the
        # pattern `_fuse` turns into ONNX Runtime's own Attention kernel.
        transformer.set_attn_implementation("eager")
        # The tracer warns about Python branches it freezes; none depends on the batch shape.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(transformer), args, tmp,
                input_names=list(_INPUTS), output_names=["last_hidden_state"],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )
        _fuse(tmp, transformer.config, {name: sample[name].numpy() for name in _INPUTS})
        os.replace(tmp, target)
    finally:
        transformer.set_attn_implementation(attention)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fuse(path: str, config: Any, sample: dict[str, np.ndarray]) -> None:
    """Rewrite the export at `path` with ONNX Runtime's transformer fusions where they hold.

    ONNX Runtime's session-time optimizer leaves BERT-style attention as a dozen small ops;
    its offline optimizer (`onnxruntime.transformers`) fuses each layer's attention, the
    residual adds with their layer norms, and the embeddings into single kernels. Measured
    on all-MiniLM-L6-v2: the same vectors, batches of real case texts ~10% faster, one
    query ~6% (benchmarks/RESULTS.md, "Encoder runtimes"). The fusions are pattern matches
    on the graph: a model they do not fit keeps its plain export, and so does one whose
    outputs they would change.
    """
    import onnxruntime as ort

    try:
        from onnxruntime.transformers.optimizer import optimize_model

        # opt_level 0: the pattern fusions only. The session applies its own
        # hardware-specific optimizations at load time, as for the plain export.
        fused = optimize_model(path, model_type="bert", opt_level=0,
                               num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
                               hidden_size=int(getattr(config, "hidden_size", 0) or 0))
        candidate = f"{path}.fused"
        fused.save_model_to_file(candidate)
        try:
            plain, new = (ort.InferenceSession(p, providers=["CPUExecutionProvider"])
                          .run(None, sample)[0] for p in (path, candidate))
            if plain.shape != new.shape or np.abs(plain - new).max() > FUSION_TOLERANCE:
                log.warning("the fused ONNX graph changes the model's outputs; using the "
                            "plain export")
                return
            os.replace(candidate, path)
        finally:
            if os.path.exists(candidate):
                os.unlink(candidate)
    except Exception as exc:  # the optimizer raises many kinds on graphs it does not know
        log.warning("ONNX Runtime's transformer optimizer cannot fuse this model (%s); "
                    "using the plain export", exc)


class OnnxTransformer:
    """Runs the exported transformer and pools like the model's Pooling and Normalize modules."""

    def __init__(self, model: Any, model_dir: Path) -> None:
        if not supports(model_dir):
            raise ConfigError(
                f"the onnx runtime supports mean-pooled, normalised models only; "
                f"{model_dir} is not one. Use runtime fp32"
            )
        self._model = model
        self.path = cache_dir() / "onnx" / _cache_key(model_dir) / "model.onnx"
        self._session = self._open()

    def _open(self) -> Any:
        for attempt in (1, 2):
            if not self.path.exists():
                log.info("exporting the embedding model to ONNX at %s (once per model)", self.path)
                try:
                    _export(self._model, self.path)
                except OSError as exc:
                    raise ConfigError(
                        f"cannot write the ONNX export to {self.path.parent}: {exc.strerror}. "
                        "Set CASEMATCH_CACHE_DIR to a writable folder, or use runtime fp32"
                    ) from exc
            try:
                return onnx_session(self.path)
            except Exception as exc:  # onnxruntime raises its own untyped errors
                if attempt == 2:
                    raise ConfigError(f"cannot load the ONNX export {self.path}: {exc}") from exc
                log.warning("ONNX export %s is unreadable (%s); exporting it again", self.path, exc)
                self.path.unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32 unit vectors for one padded batch."""
        features = _features(self._model, texts)
        feeds = {name: features[name].numpy().astype(np.int64, copy=False) for name in _INPUTS}
        hidden = self._session.run(None, feeds)[0]
        return pool(hidden, feeds["attention_mask"])
