"""Which FAISS index holds a generation's vectors, chosen by size.

- Up to `EXACT_LIMIT` vectors: exact search, `IDMap2(SQfp16)`. A single query scans every
  vector, split across the cores (`VectorIndex`).
- Above it: IVF (inverted lists over spherical k-means centroids, inner product).
  Chosen over HNSW because IVF supports `remove_ids` and `add_with_ids` in place, so a
  nightly update of a million-vector index removes and adds only what changed (HNSW in
  FAISS cannot remove ids and costs minutes to rebuild at 1M). Only the candidate set is
  approximate, and `reconstruct(id)` keeps working through a hash-table direct map.

Both store each component as a 16-bit float. Unit-vector components round to within
~5e-4 of their value, so a cosine moves by ~1e-4 and the top 10 stay the same as with
32-bit floats (recall@10 1.000 in benchmarks/RESULTS.md, "Scale"), while memory halves and
an exact scan gets faster: it is bound by decoding rather than by memory bandwidth, so it
also splits well across cores.

`fit()` runs once per generation, at commit: it switches kind when the size crosses the
limit (with hysteresis, so a size hovering at the limit does not flip every night) and
retrains the centroids when the collection has grown or shrunk a lot since they were
trained. `VectorIndex` wraps an opened index for queries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from casematch import threads
from casematch.errors import IndexFormatError

# IVF must still scan ~64k vectors for recall@10 >= 0.98 (below), so it pays off only
# well above that: at 200k it scans a third, at 1M a sixteenth.
EXACT_LIMIT = 200_000
# An exact scan of one query is split into up to this many parts, one per core, from
# this many vectors on; below it a scan takes ~1 ms and a hand-off to a worker costs more
# than it saves.
MAX_SCAN_PARTS = 4
PARALLEL_SCAN_MIN = 20_000
# Vectors an IVF search scans. benchmarks/scale.py's nprobe sweep (real queries against
# real + synthetic case vectors): recall@10 vs exact reached 0.987 at 100k scanning 50k
# vectors (nprobe 128 of 256) and 0.988 at 1M scanning 62k (nprobe 64 of 1,024); recall
# follows the number of vectors scanned far more than the share of lists. On 48k real
# vectors only (benchmarks/vector_choices.py) it took half the lists too: 0.993.
SCAN_VECTORS = 64_000
MIN_NPROBE = 8
# k-means sample: FAISS warns below ~39 points per centroid; 64 is plenty for spherical
# centroids and keeps training at 1M vectors to seconds rather than minutes on 2 cores.
TRAIN_POINTS_PER_CENTROID = 64
TRAIN_ITERATIONS = 20
# Vectors decoded at a time when an index is converted (flat <-> IVF, retraining): 16k
# 384-dimension vectors are 24 MB as 32-bit floats.
CONVERT_CHUNK = 16_384


def _faiss() -> Any:
    import faiss

    return faiss


def new_index(dimension: int) -> Any:
    """An empty exact index; `fit()` decides later whether it should become approximate."""
    faiss = _faiss()
    # inner product == cosine: every vector is L2-normalised before it is added.
    return faiss.IndexIDMap2(faiss.IndexScalarQuantizer(
        dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))


def nlist_for(count: int) -> int:
    """Number of inverted lists: a power of two near sqrt(count) (FAISS's rule of thumb)."""
    return max(64, 2 ** round(math.log2(max(count, 1)) / 2))


def nprobe_for(nlist: int, count: int) -> int:
    """Lists to probe so that about `SCAN_VECTORS` vectors are scanned per query."""
    per_list = max(count, 1) / nlist
    return min(nlist, max(MIN_NPROBE, math.ceil(SCAN_VECTORS / per_list)))


def kind(index: Any) -> str:
    """"flat" or "ivf"."""
    return "ivf" if _ivf(index) is not None else "flat"


def describe(index: Any) -> str:
    """A short description for the manifest ("IDMap2,SQfp16", "IVF1024,SQfp16/nprobe=64";
    "Flat" in place of "SQfp16" for indexes written with 32-bit codes)."""
    ivf = _ivf(index)
    codes = "SQfp16" if _is_fp16(index) else "Flat"
    if ivf is None:
        return f"IDMap2,{codes}"
    return f"IVF{ivf.nlist},{codes}/nprobe={ivf.nprobe}"


def memory_bytes(index: Any) -> int:
    """Approximate resident size of the vectors and their ids (the index's bulk)."""
    ivf = _ivf(index)
    per_vector = _codes_of(index).code_size + 8  # codes + int64 id
    if ivf is not None:
        # Centroids, plus the id -> (list, offset) hash table that `reconstruct` uses.
        return int(index.ntotal * (per_vector + 32) + ivf.nlist * index.d * 4)
    # IDMap2 keeps a reverse id map (a hash table) beside the forward id array.
    return int(index.ntotal * (per_vector + 32))


def fit(index: Any, *, exact_limit: int = EXACT_LIMIT) -> Any:
    """The index to write for this generation: `index` itself, or a converted copy.

    Flat becomes IVF above `exact_limit`; IVF becomes flat again below half of it. An IVF
    index whose nlist is off by 4x or more for its current size (it has grown or shrunk
    ~16x since training) is retrained on its own vectors.
    """
    count = index.ntotal
    ivf = _ivf(index)
    if ivf is None:
        return index if count <= exact_limit else _convert(index, to_ivf=True)
    if count < exact_limit // 2:
        return _convert(index, to_ivf=False)
    wanted = nlist_for(count)
    if max(wanted / ivf.nlist, ivf.nlist / wanted) >= 4:
        return _convert(index, to_ivf=True)
    ivf.nprobe = nprobe_for(ivf.nlist, count)  # lists grow with the collection
    return index


def _ivf(index: Any) -> Any:
    faiss = _faiss()
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _codes_of(index: Any) -> Any:
    """The part of `index` that holds the codes: the IVF index, or IDMap2's flat index."""
    ivf = _ivf(index)
    return _faiss().downcast_index(ivf if ivf is not None else index.index)


def _is_fp16(index: Any) -> bool:
    faiss = _faiss()
    codes = _codes_of(index)
    return (isinstance(codes, faiss.IndexScalarQuantizer | faiss.IndexIVFScalarQuantizer)
            and codes.sq.qtype == faiss.ScalarQuantizer.QT_fp16)


def _convert(index: Any, *, to_ivf: bool) -> Any:
    """A new flat or IVF index holding the vectors of `index`, copied `CONVERT_CHUNK` at a
    time: while it is built, memory holds the old index, the new one and one chunk, never
    every vector once more as 32-bit floats."""
    count = index.ntotal
    converted = _empty_ivf(index, count) if to_ivf else new_index(index.d)
    for ids, vectors in _chunks(index):
        converted.add_with_ids(vectors, ids)
    return converted


def _empty_ivf(source: Any, count: int) -> Any:
    """An IVF index for `count` vectors, trained on a sample of the vectors of `source`."""
    faiss = _faiss()
    dimension = source.d
    nlist = nlist_for(count)
    quantizer = faiss.IndexFlatIP(dimension)
    # Vectors encoded as they are, not as residuals from their centroid: a score is then
    # the same fp16 dot product an exact index computes.
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist,
                                        faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT, False)
    ivf.own_fields = True
    quantizer.this.disown()  # the IVF index owns (and frees) its quantizer now
    # Spherical k-means: centroids renormalised each iteration, as the data are unit vectors.
    ivf.cp.spherical = True
    ivf.cp.niter = TRAIN_ITERATIONS
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_CENTROID
    ivf.cp.seed = 1234  # reproducible builds
    # k-means would draw this many points itself; drawing them here decodes only those.
    ivf.train(_sample(source, nlist * TRAIN_POINTS_PER_CENTROID))
    # reconstruct(id) (search.py reads case vectors back) needs an id -> entry map; the
    # hash-table kind is the one that still allows remove_ids.
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    ivf.nprobe = nprobe_for(nlist, count)
    return ivf


def _sample(index: Any, size: int) -> np.ndarray:
    """Up to `size` of the vectors of `index`, drawn at random (a fixed seed), as floats."""
    ivf = _ivf(index)
    count = int(index.ntotal)
    chosen = np.random.default_rng(1234).choice(count, size=min(size, count), replace=False)
    chosen.sort()
    if ivf is None:
        # Storage positions, which the flat index under the id map reconstructs.
        return np.asarray(index.index.reconstruct_batch(chosen.astype(np.int64)))
    return np.asarray(ivf.reconstruct_batch(stored_ids(index)[chosen]))


def _chunks(index: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors as 32-bit floats) of every entry of `index`, `CONVERT_CHUNK` at a time."""
    ivf = _ivf(index)
    ids = stored_ids(index)
    for start in range(0, len(ids), CONVERT_CHUNK):
        part = ids[start:start + CONVERT_CHUNK]
        # A flat index decodes by storage position; an IVF one through its id -> entry
        # map, which decodes whatever the codes are.
        yield part, (index.index.reconstruct_n(start, len(part)) if ivf is None
                     else ivf.reconstruct_batch(part))


def stored_ids(index: Any) -> np.ndarray:
    """The id of every stored vector (for consistency checks), without decoding vectors."""
    faiss = _faiss()
    ivf = _ivf(index)
    if not index.ntotal:
        return np.zeros(0, np.int64)
    if ivf is None:
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    lists = ivf.invlists
    return np.concatenate([
        faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
        for number in range(ivf.nlist) if lists.list_size(number)]).astype(np.int64)


def read(path: Path) -> Any:
    """The FAISS index stored at `path` (raises `IndexFormatError` when unreadable)."""
    try:
        return _faiss().read_index(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IndexFormatError(
            f"{path}: cannot read the vector file ({first}); rebuild the index") from exc


def write(index: Any, path: Path) -> None:
    _faiss().write_index(index, str(path))


def add(index: Any, vectors: np.ndarray, ids: Sequence[int]) -> None:
    """Add unit vectors under their chunk ids."""
    index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))


def remove(index: Any, ids: Sequence[int]) -> None:
    """Remove chunk ids (an exact index rewrites its array: call once per generation)."""
    index.remove_ids(np.asarray(ids, dtype=np.int64))


class VectorIndex:
    """An opened generation's vectors: the FAISS index plus what single queries need.

    The query side of the FAISS index: `search` (with an optional id filter) and
    `reconstruct_batch`. The raw index stays in `index` for the writer's functions below.
    """

    def __init__(self, index: Any, *, parts: int | None = None) -> None:
        self.index = index
        self._ivf = _ivf(index)
        count = int(index.ntotal)
        if parts is None:
            parts = 1 if count < PARALLEL_SCAN_MIN else min(_cores(), MAX_SCAN_PARTS)
        self._parts: list[Any] = []
        if self._ivf is None and parts > 1:
            faiss = _faiss()
            self._flat = faiss.downcast_index(index.index)
            # Storage position -> id: the parts search the flat index, which knows positions.
            self._ids = faiss.vector_to_array(index.id_map)
            bounds = np.linspace(0, count, parts + 1).astype(np.int64)
            self._parts = [faiss.IDSelectorRange(int(lo), int(hi))
                           for lo, hi in pairwise(bounds)]

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        return "flat" if self._ivf is None else "ivf"

    @property
    def scan_parts(self) -> int:
        """Threads one query's exact scan is split across (1: not split)."""
        return max(1, len(self._parts))

    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(inner products, ids) of the `k` nearest vectors to each query, best first.

        `allowed` restricts the search to those ids inside FAISS, not after it, so a filter
        never empties a result list while matching vectors exist. Missing results are -1.
        """
        faiss = _faiss()
        params: Any = None
        if allowed is not None:
            # The selector must outlive the search (a SWIG object the params only point at).
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters()
            params.sel = selector
        if self._ivf is not None and params is not None:
            # IVF refuses plain SearchParameters, and its own parameter object would
            # silently reset nprobe to 1.
            ivf_params = faiss.SearchParametersIVF()
            ivf_params.sel = params.sel
            ivf_params.nprobe = self._ivf.nprobe
            distances, ids = self._search(queries, k, ivf_params)
            if (ids[:, :k] < 0).any() and ivf_params.nprobe < self._ivf.nlist:
                # A narrow filter leaves too few allowed vectors in the probed lists:
                # probe them all. The filter is checked before any distance is computed,
                # so this costs one id lookup per vector, and matches exact search.
                ivf_params.nprobe = self._ivf.nlist
                distances, ids = self._search(queries, k, ivf_params)
            return distances, ids
        return self._search(queries, k, params)

    def reconstruct_batch(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (decoded from 16-bit codes to float32)."""
        result: np.ndarray = self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return result

    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[Any, Any]:
        faiss = _faiss()
        if len(queries) != 1:
            return self.index.search(queries, k, params=params)
        # One query uses one thread anyway; an OpenMP team only adds wake-up latency and
        # spinning threads that steal the CPU from torch (torch and faiss share libgomp), and
        # a forked child inherits it as a pool without threads (its next scan hangs).
        # The setting is per calling thread in libgomp; restore it so torch keeps its own.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            if self._parts:
                return self._split_scan(queries, k, params)
            return self.index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    def _split_scan(self, queries: np.ndarray, k: int, params: Any) -> tuple[Any, Any]:
        """One exact scan, its storage cut into ranges searched side by side (FAISS
        releases the GIL); a range is skipped vector by vector for the cost of a compare."""
        faiss = _faiss()
        wanted = None if params is None else params.sel

        def scan(part: Any) -> tuple[np.ndarray, np.ndarray]:
            faiss.omp_set_num_threads(1)  # as `_search` does, in the pool's threads too
            selector = part
            if wanted is not None:
                # The filter names ids; the flat index knows storage positions.
                selector = faiss.IDSelectorAnd(
                    part, faiss.IDSelectorTranslated(self.index.id_map, wanted))
            scan_params = faiss.SearchParameters()
            scan_params.sel = selector
            distances, positions = self._flat.search(queries, k, params=scan_params)
            return distances, positions

        pool = threads.pool("scan", MAX_SCAN_PARTS)
        pending = [pool.submit(scan, part) for part in self._parts[1:]]
        results = [scan(self._parts[0]), *(p.result() for p in pending)]
        distances, positions = faiss.merge_knn_results(
            np.stack([d for d, _ in results]), np.stack([p for _, p in results]),
            keep_max=True)
        ids = np.where(positions >= 0, self._ids[np.maximum(positions, 0)], -1)
        return distances, ids


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


__all__ = [
    "EXACT_LIMIT",
    "VectorIndex",
    "add",
    "describe",
    "fit",
    "kind",
    "memory_bytes",
    "new_index",
    "nlist_for",
    "nprobe_for",
    "read",
    "remove",
    "write",
]
