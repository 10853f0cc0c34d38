"""The query model as plain files: fused ONNX graph, tokenizer.json and the few settings.

A query is one short text; loading torch, transformers and sentence-transformers to embed
it took 3.6 s of a 5 s cold `casematch query` (benchmarks/RESULTS.md, "Cold start"). A
bundle holds all a query needs, run by the `tokenizers` library and ONNX Runtime with
pooling in numpy (`OnnxQueryEncoder`). It is written once per model into the cache folder
by the torch encoder (which exports the graph) and copied into each index it builds, so a
copied index answers fast on any machine with onnxruntime.

Layout of a bundle folder:
    model.onnx       the fused transformer's graph (last hidden state), as
                     `casematch.encoders.onnx` exports it, without its weights
    model.onnx.data  the weights, which ONNX Runtime maps into memory instead of parsing
    model-int8.onnx  (where `encoder.json` says "int8") the same graph with the weights of
                     its dense layers in 8 bits and their products in int8 (ONNX Runtime's
                     `MatMulNBits`); every other weight is read from model.onnx.data
    model-int8.onnx.data  those 8-bit weights (~10 MB)
    tokenizer.json   the model's fast tokenizer, exactly the one sentence-transformers calls
    encoder.json     model name, window, dimension, padding token, source fingerprint

The int8 graph is a query session the runtime trial may choose, only where it is faster
and its vectors pass the trial's quality gate (`casematch.encoders.trial`); the fp32 graph
gives the torch encoder's vectors. Version 1 bundles kept the weights inside model.onnx,
version 2 had no int8 graph; both still load, and the cache's own is written again at the
current version on the next build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from casematch.encoders.models import DEFAULT_BATCH_SIZE, windows
from casematch.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

BUNDLE_VERSION = 3
INDEX_FOLDER = "model-onnx"  # beside the generations of an index, never pruned
GRAPH = "model.onnx"
# The weights apart from the graph: ONNX Runtime maps the file instead of parsing a 90 MB
# protobuf, and pages of the word-embedding table no query touches are never read. A cold
# session took ~60 ms and 133 MB instead of ~165 ms and 204 MB (all-MiniLM-L6-v2;
# benchmarks/RESULTS.md, "Cold start").
WEIGHTS = "model.onnx.data"
INT8_GRAPH = "model-int8.onnx"
INT8_WEIGHTS = "model-int8.onnx.data"
# 8-bit weights in blocks of 16 along each product, int8 activations per block (accuracy
# level 4, VNNI where the CPU has it). On 2 EPYC cores a ~30-token query took 4.6 ms
# against 5.5 for fp32; its vectors were within cosine 0.9995 of fp32's on 100 chat
# messages and 0.9998 on both dev sets' queries, and MRR moved by under 0.002 on either.
# Blocks of 32 fell to 0.9992; fp32 products of 8-bit weights ran at 12 ms
# (benchmarks/RESULTS.md, "Query graphs: fp32 and int8").
INT8_BLOCK = 16
WEIGHT_KINDS = ("fp32", "int8")
_FILES = {1: (GRAPH, "tokenizer.json", "encoder.json"),
          2: (GRAPH, WEIGHTS, "tokenizer.json", "encoder.json"),
          3: (GRAPH, WEIGHTS, "tokenizer.json", "encoder.json")}


def cache_dir() -> Path:
    """Where exported models live: $CASEMATCH_CACHE_DIR, else the user's cache folder."""
    explicit = os.environ.get("CASEMATCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "casematch"


def cached_bundle_dir(model_name: str) -> Path:
    """The cache folder of the bundle for a canonical model name."""
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:16]
    return cache_dir() / "query" / digest


def source_fingerprint(model_dir: Path) -> str:
    """Sizes and times of the model's files: a changed local model is exported again.

    Only `stat` calls, so the query path can check it without loading anything.
    """
    digest = hashlib.sha256()
    if model_dir.is_dir():
        for path in sorted(model_dir.glob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def read_bundle(folder: Path, model_name: str) -> dict[str, Any] | None:
    """The settings of a complete bundle for `model_name` in `folder`, else None."""
    try:
        config = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(config, dict) or config.get("version") not in _FILES
            or config.get("model") != model_name
            or not all((folder / name).is_file() for name in _files(config))):
        return None
    return config


def _files(config: dict[str, Any]) -> tuple[str, ...]:
    int8 = (INT8_GRAPH, INT8_WEIGHTS) if config["version"] >= 3 and config.get("int8") else ()
    return _FILES[config["version"]] + int8


def write_bundle(folder: Path, *, onnx_path: Path, tokenizer_json: str,
                 settings: dict[str, Any]) -> None:
    """Write a bundle into `folder` atomically (a reader sees the old one or the new one)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    os.chmod(tmp, 0o755)  # readable by whoever reads the index, as its other files
    try:
        _write_graph(onnx_path, tmp)
        int8 = _write_int8_graph(tmp)
        (tmp / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        (tmp / "encoder.json").write_text(
            json.dumps({"version": BUNDLE_VERSION, **settings, "int8": int8}, indent=2),
            encoding="utf-8")
        _swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_graph(onnx_path: Path, folder: Path) -> None:
    """The ONNX file at `onnx_path` as GRAPH and WEIGHTS in `folder`."""
    import onnx  # the exporter's own dependency: never imported on the query path

    onnx.save_model(onnx.load(str(onnx_path)), str(folder / GRAPH), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=WEIGHTS, size_threshold=1024)
    for name in (GRAPH, WEIGHTS):
        os.chmod(folder / name, 0o644)  # onnx writes its data file for its owner only


def _write_int8_graph(folder: Path) -> bool:
    """INT8_GRAPH beside GRAPH in `folder`; False (with the reason logged) where it cannot
    be made: the fp32 graph still serves every query."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:
        log.warning("query model: no int8 graph (%s); pip install onnx-ir", exc)
        return False
    finally:
        # The quantizer's module calls logging.basicConfig(level=INFO) on import: the
        # caller's logging must stay as it was.
        root.handlers[:] = handlers
        root.setLevel(level)
    try:
        stored = onnx.load(str(folder / GRAPH), load_external_data=False)
        where = {t.name: [(e.key, e.value) for e in t.external_data]
                 for t in stored.graph.initializer if uses_external_data(t)}
        model = onnx.load(str(folder / GRAPH))
        before = {t.name: t.raw_data for t in model.graph.initializer}
        quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=INT8_BLOCK,
                                         is_symmetric=True, accuracy_level=4)
        _quietly(quantizer.process)
        quantized = quantizer.model.model
        for tensor in quantized.graph.initializer:
            # Weights the quantizer left alone (word embeddings, attention) stay in
            # WEIGHTS: the int8 graph adds ~10 MB to a bundle, not another 90.
            if tensor.name in where and tensor.raw_data == before.get(tensor.name):
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
                del tensor.external_data[:]
                for key, value in where[tensor.name]:
                    tensor.external_data.add(key=key, value=value)
        onnx.save_model(quantized, str(folder / INT8_GRAPH), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=INT8_WEIGHTS,
                        size_threshold=1024)
        for name in (INT8_GRAPH, INT8_WEIGHTS):
            os.chmod(folder / name, 0o644)
    except Exception as exc:  # onnx and the quantizer raise many kinds
        log.warning("query model: no int8 graph (%s)", exc)
        for name in (INT8_GRAPH, INT8_WEIGHTS):
            (folder / name).unlink(missing_ok=True)
        return False
    return True


def _quietly(work: Any) -> None:
    # The quantizer logs every node it visits at INFO on the root logger's handlers.
    logger = logging.getLogger("onnxruntime.quantization")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        work()
    finally:
        logger.setLevel(level)


def copy_bundle(source: Path, folder: Path) -> None:
    """Copy a bundle (its model files hard-linked where the file system allows) into `folder`."""
    config = json.loads((source / "encoder.json").read_text(encoding="utf-8"))
    files = _files(config)
    if _same_bundle(source, folder, files):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    os.chmod(tmp, 0o755)  # readable by whoever reads the index, as its other files
    try:
        for name in files:
            _link_or_copy(source / name, tmp / name)
        _swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _same_bundle(source: Path, folder: Path, files: tuple[str, ...]) -> bool:
    try:
        return all((source / n).read_bytes() == (folder / n).read_bytes()
                   for n in ("encoder.json", "tokenizer.json")) and all(
            (source / n).stat().st_size == (folder / n).stat().st_size
            for n in files if not n.endswith(".json"))
    except OSError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link costs no space; the cache replaces its files (new inodes), never edits them.
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _swap_in(tmp: Path, folder: Path) -> None:
    old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def onnx_session(path: Path, *, threads: int | None = None, spinning: bool = False) -> Any:
    """An ONNX Runtime session (shared by torch and query encoders).

    `threads` (intra-op) defaults to `session_threads()`. Spinning is off by default:
    beside a busy process, spinning threads took 17 ms p50 per query against 11 ms without.
    For one query the best pair depends on the machine and its load, so the query encoder
    takes the pair its runtime trial measured (`casematch.encoders.trial`).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or session_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if spinning:
        # Spin between the parallel sections of a run, not after it: the rest of a search
        # (FTS5, FAISS, fusion, collapse) needs both cores. Measured side by side on the
        # SeaMonkey index, warm search p50 10.8 against 11.5 ms (benchmarks/RESULTS.md,
        # "Warm query on the peers' index").
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_threads() -> int:
    # Two cores: a single query ran 1.8x faster on both than on one.
    return min(os.cpu_count() or 1, 4)


def pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean over the real tokens, then L2-normalised, as the model's Pooling and Normalize."""
    mask = attention_mask[:, :, None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return np.ascontiguousarray(pooled, dtype=np.float32)


class OnnxQueryEncoder:
    """An `Encoder` from a bundle: tokenizers + ONNX Runtime + numpy, no torch.

    Its chunks are the torch encoder's (same tokenizer). With `weights="fp32"` its vectors
    are too (same graph as the onnx runtime, same pooling): cosine >= 0.9999 to torch fp32,
    checked by the tests. `weights="int8"` runs the bundle's int8 graph, which the runtime
    trial chooses only where it is faster and passes the quality gate; a bundle without
    one (written before version 3, or where it could not be made) runs fp32.
    """

    runtime = "onnx"

    def __init__(self, folder: Path, model_name: str, *, threads: int | None = None,
                 spinning: bool = False, weights: str = "fp32") -> None:
        if weights not in WEIGHT_KINDS:
            raise ValueError(f"unknown query weights {weights!r}")
        config = read_bundle(folder, model_name)
        if config is None:
            raise ConfigError(f"{folder}: no complete ONNX query model for {model_name}; "
                              "rebuild the index or delete the folder to export it again")
        self.weights = "int8" if weights == "int8" and INT8_GRAPH in _files(config) else "fp32"
        graph = folder / (INT8_GRAPH if self.weights == "int8" else GRAPH)
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                f"the fast query path needs tokenizers and onnxruntime ({exc}): "
                "pip install tokenizers onnxruntime") from exc
        self.folder = folder
        self._name = model_name
        self._dimension = int(config["dimension"])
        self._max_length = int(config["max_seq_length"])
        # Two special tokens ([CLS], [SEP]) share the model's window with the text.
        self._window = self._max_length - 2
        self.batch_size = DEFAULT_BATCH_SIZE
        self._lower = bool(config.get("do_lower_case", False))
        self._tokenizer_json = (folder / "tokenizer.json").read_text(encoding="utf-8")
        # Two copies: one truncating and padding like sentence-transformers' preprocess
        # for model inputs, one untouched for the offsets `chunk` cuts windows at. The
        # second is made on the first long text (each costs ~25 ms to parse, and a short
        # query never needs it).
        try:
            self._tokenizer = Tokenizer.from_str(self._tokenizer_json)
        except Exception as exc:  # tokenizers raises plain Exceptions on bad JSON
            raise ConfigError(f"{folder / 'tokenizer.json'} is damaged ({exc}); delete "
                              f"{folder} to export it again") from exc
        self._tokenizer.enable_truncation(self._max_length)
        self._tokenizer.enable_padding(pad_id=int(config["pad_id"]),
                                       pad_token=str(config["pad_token"]))
        self._offsets: Any = None
        try:
            self._session = onnx_session(graph, threads=threads, spinning=spinning)
        except ImportError as exc:
            raise MissingDependencyError(
                f"the fast query path needs onnxruntime ({exc}): pip install onnxruntime"
            ) from exc
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load the ONNX query model {graph}: "
                              f"{exc}; delete {folder} to export it again") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.threads, self.spinning = threads or session_threads(), spinning

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
        if self._offsets is None:
            from tokenizers import Tokenizer

            # Two threads may both parse it: the same tokenizer either way.
            offsets = Tokenizer.from_str(self._tokenizer_json)
            offsets.no_truncation()
            offsets.no_padding()
            self._offsets = offsets
        return windows(text, self._offsets.encode(text, add_special_tokens=False).offsets,
                       self._window)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        texts = [t.lower() for t in texts] if self._lower else list(texts)
        if len(texts) == 1:
            # A query: one text pads to itself, so no sorting or scatter.
            return self._encode_batch(texts)
        # Longest first, as sentence-transformers does within a call: batches pad little.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._encode_batch([texts[i] for i in rows])
        return vectors

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        # sentence-transformers strips each text before tokenizing.
        encodings = self._tokenizer.encode_batch([t.strip() for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask,
                 "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        return pool(hidden, mask)
