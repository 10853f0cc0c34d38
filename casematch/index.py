"""`CaseIndex`: the face of an index directory. Open, build, update, search, get, stats.

It composes the layers below it and adds no logic of its own: the on-disk format is
`casematch.storage.generations`, writing is `casematch.storage.writer`, ranking is
`casematch.search`, and embedding is `casematch.encoders`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from casematch.cases import Case, Filters, Match
from casematch.encoders import (
    DEFAULT_BATCH_SIZE,
    Encoder,
    canonical_model_name,
    load_encoder,
    load_query_encoder,
)
from casematch.errors import IndexFormatError, ModelMismatchError
from casematch.search import SearchOptions, search
from casematch.storage.generations import Generation, current_generation
from casematch.storage.writer import IndexWriter, UpdateResult

# Tuned models live in the index folder, outside generations (never pruned).
MODELS_DIR = "models"
# What `casematch tune` did and fitted (base model, runs, fusion weights), beside CURRENT.
TUNING_FILE = "tuning.json"


class CaseIndex:
    """An opened index generation: search it, or write the next generation from it.

    The model loads on the first search, not when the index opens, so `stats()` and
    `get()` stay fast. Use it as a context manager, or call `close()`.
    """

    def __init__(self, generation: Generation, encoder: Encoder | Callable[[], Encoder]) -> None:
        self._generation = generation
        self._encoder = encoder
        # The lexical weight `casematch tune --labels` fitted for this index and model.
        fusion = read_tuning(generation.root).get("fusion") or {}
        fitted = (fusion.get(generation.manifest["model"]) or {}).get("lexical_weight")
        self.fitted_lexical_weight: float | None = None if fitted is None else float(fitted)

    # ---- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        device: str = "cpu",
        runtime: str = "auto",
    ) -> CaseIndex:
        """Open the current generation of the index at `path`.

        Args:
            path: the index directory.
            model: the model expected; `None` takes the one the index was built with.
            encoder: an already loaded encoder to search with (its name must match).
            device: where the model runs when it loads ("cpu", "cuda", ...).
            runtime: encoder runtime; "auto" takes the one measured fastest for single
                queries on this machine, which where it is onnx loads no torch (the
                index's `model-onnx` copy of the model, else the cache's).

        Returns:
            The opened index. The model loads on the first search (or `warm()`).

        Raises:
            IndexFormatError: no index there, or a damaged or older-format one.
            ModelMismatchError: `model` or `encoder` is not the model of the index.
        """
        generation = Generation.open(Path(path))
        built_with = generation.manifest["model"]
        wanted = encoder.name if encoder else canonical_model_name(model) if model else None
        if wanted and wanted != built_with:
            generation.close()
            raise ModelMismatchError(
                f"{path} was built with model {built_with!r}, not {wanted!r}: "
                f"open it with --model {built_with} or rebuild it with the new model"
            )

        root = generation.root

        def query_encoder() -> Encoder:
            if IndexModel.inside(root, built_with):
                # A tuned model inside the index: its query model is exported to the cache.
                return IndexModel(built_with, load_query_encoder(
                    str(root / built_with), device=device, runtime=runtime))
            return load_query_encoder(built_with, device=device, runtime=runtime,
                                      index_root=root)

        return cls(generation, encoder or query_encoder)

    @classmethod
    def build(
        cls,
        cases: Iterable[Case],
        path: str | Path,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        include_unresolved: bool = False,
        progress: bool = False,
        reuse: bool = True,
        device: str = "cpu",
        runtime: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> tuple[CaseIndex, UpdateResult]:
        """Write a generation holding exactly `cases`; cases missing from it are deleted.

        Vectors of cases whose text did not change are copied from the current generation
        (same model), so rebuilding from a full export re-embeds only what changed.

        Args:
            cases: the cases; unresolved ones are skipped unless `include_unresolved`.
            path: the index directory (created when missing).
            model: model name or folder for a new index ("default" when None).
            encoder: an already loaded encoder instead of `model`.
            include_unresolved: keep unresolved cases too (searches still skip them).
            progress: show a progress bar while embedding.
            reuse: False re-embeds everything.
            device: where the model runs.
            runtime: encoder runtime.
            batch_size: texts per forward pass.

        Returns:
            The opened new index and what changed.

        Raises:
            IndexLockedError: another process is writing the index.
            IndexFormatError: the current generation is damaged.
        """
        root = Path(path)
        encoder = encoder or load_encoder(model or "default", device=device, runtime=runtime,
                                          batch_size=batch_size)
        with IndexWriter(root, encoder, include_unresolved=include_unresolved,
                         fresh=not reuse) as writer:
            for case in cases:
                writer.upsert(case)
            writer.delete_unseen()
            result = writer.commit(progress=progress)
            attach_query_model(root, encoder)
        return cls.open(root, encoder=encoder), result

    def update(
        self,
        cases: Iterable[Case] = (),
        *,
        delete: Iterable[str] = (),
        include_unresolved: bool | None = None,
        progress: bool = False,
    ) -> tuple[CaseIndex, UpdateResult]:
        """Write a new generation with `cases` upserted and `delete` ids removed.

        Returns:
            The opened new generation and what changed; this object keeps serving the
            generation it opened.

        Raises:
            IndexLockedError: another process is writing the index.
        """
        keep_unresolved = (
            self.manifest.get("include_unresolved", False)
            if include_unresolved is None else include_unresolved
        )
        with IndexWriter(self.root, self.encoder, include_unresolved=keep_unresolved) as writer:
            for case in cases:
                writer.upsert(case)
            for case_id in delete:
                writer.delete(case_id)
            result = writer.commit(progress=progress)
            attach_query_model(self.root, self.encoder)
        return CaseIndex.open(self.root, encoder=self.encoder), result

    # ---- reading --------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._generation.root

    @property
    def generation(self) -> str:
        """The name of the opened generation ("g000003")."""
        return self._generation.name

    @property
    def manifest(self) -> dict[str, Any]:
        return self._generation.manifest

    @property
    def storage(self) -> Generation:
        """The opened generation itself (case store, vectors, chunk map), for tools that
        look inside an index: benchmarks, diagnostics."""
        return self._generation

    def warm(self) -> Encoder:
        """Load the query encoder and run one query through it now, not on the first search.

        For long-running servers (the Slack responder): the first user does not wait for
        the model, and a broken model fails at start rather than on a question.
        """
        self.encoder.encode(["warm up"])
        return self.encoder

    @property
    def encoder(self) -> Encoder:
        """The query encoder (loaded on first use)."""
        if not isinstance(self._encoder, Encoder):
            self._encoder = self._encoder()
        return self._encoder

    def search(self, text: str, k: int = 5, *, filters: Filters | None = None,
               options: SearchOptions | None = None) -> list[Match]:
        """The `k` past cases closest to `text`, best first (hybrid dense + lexical).

        Args:
            text: the new case.
            k: how many matches (recurring incidents count once).
            filters: restrict by source, channel, tag or date; resolved cases only by default.
            options: ranking options; the defaults are the measured configuration.

        Returns:
            `Match`es, best first; empty when nothing passes the filters.
        """
        if self.fitted_lexical_weight is not None and (
                options is None or options.lexical_weight is None):
            # The weight `tune` fitted on this index's labels, where the caller set none.
            options = replace(options or SearchOptions(),
                              lexical_weight=self.fitted_lexical_weight)
        return search(self._generation, self.encoder, text, k, filters=filters,
                      options=options)

    def is_current(self) -> bool:
        """Whether this is still the generation CURRENT names (True when it cannot tell).

        A long-running reader (the Slack responder) calls this to follow new generations.
        """
        try:
            return current_generation(self.root) == self.generation
        except (OSError, IndexFormatError):
            return True  # mid-replace or gone: keep serving the generation we have

    def get(self, case_id: str) -> Case | None:
        """The stored case with this id, or None."""
        return self._generation.store.case_by_id(case_id)

    def __len__(self) -> int:
        return int(self.manifest["cases"])

    def stats(self) -> dict[str, Any]:
        """Path, generation, model, dimension, build time and counts by source and channel."""
        return {
            "path": str(self.root),
            "generation": self.generation,
            **{k: self.manifest[k] for k in ("model", "dimension", "built_at", "format")},
            **self._generation.store.stats(),
        }

    def close(self) -> None:
        self._generation.close()

    def __enter__(self) -> CaseIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach_query_model(root: Path, encoder: Encoder) -> Path | None:
    """Copy the torch-free query model into `<root>/model-onnx`, so a copy of the index
    answers fast anywhere (`casematch.encoders.bundle`). Call while holding the write lock.

    Returns the folder, or None where the encoder cannot provide one (a fake, a model ONNX
    Runtime cannot run); the query then falls back to the cache or to torch.
    """
    import logging

    from casematch.encoders import bundle

    make = getattr(encoder, "query_bundle", None)
    if make is None:
        return None
    try:
        source = make()
        target = root / bundle.INDEX_FOLDER
        bundle.copy_bundle(source, target)
    except Exception as exc:  # never fail a finished build over the fast-start copy
        logging.getLogger(__name__).warning(
            "the index has no torch-free query model (%s); queries will load torch", exc)
        return None
    return target


class IndexModel:
    """An encoder whose weights live inside the index folder (`casematch tune`).

    Its name is the folder relative to the index root, which is what the manifest records:
    a copied or moved index still opens, offline, with its own model.
    """

    def __init__(self, name: str, inner: Encoder) -> None:
        self._name = name
        self._inner = inner
        self.runtime = getattr(inner, "runtime", None)

    @classmethod
    def load(cls, root: Path, model: str, *, device: str = "cpu", runtime: str = "auto",
             batch_size: int = DEFAULT_BATCH_SIZE) -> Encoder:
        """The encoder for a model an index records: a folder inside the index, or any
        name or path `load_encoder` takes."""
        if cls.inside(root, model):
            return cls(model, load_encoder(str(root / model), device=device, runtime=runtime,
                                           batch_size=batch_size))
        return load_encoder(model, device=device, runtime=runtime, batch_size=batch_size)

    @staticmethod
    def inside(root: Path, model: str) -> bool:
        """Whether `model` names a model folder inside the index at `root`."""
        return not Path(model).is_absolute() and (root / model / "config.json").is_file()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def chunk(self, text: str) -> list[str]:
        return self._inner.chunk(text)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._inner.encode(texts, progress=progress)


def read_tuning(root: Path) -> dict[str, Any]:
    """The index's tuning record (empty when it was never tuned or the file is unreadable:
    it only refines defaults, so a damaged one must not stop searches)."""
    try:
        data = json.loads((root / TUNING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_tuning(root: Path, data: dict[str, Any]) -> None:
    tmp = root / f"{TUNING_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, root / TUNING_FILE)


def serve_queries_on_one_thread() -> None:
    """Tune this process for answering queries one at a time (the CLI, the responder).

    A query is one short text: its small matmuls gain little from two OpenMP threads, and
    when anything else holds a core the threads spin-wait on each other at every layer.
    Not done by `CaseIndex.open`: it changes torch for the whole process, which a program
    that also builds indexes may not want. It does not import torch: where the query
    runtime needs none, none is loaded.
    """
    from casematch.encoders.sbert import serve_queries_on_one_thread as torch_on_one_thread

    torch_on_one_thread()


__all__ = ["CaseIndex", "IndexModel", "UpdateResult", "attach_query_model", "read_tuning",
           "serve_queries_on_one_thread", "write_tuning"]
