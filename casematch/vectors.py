"""Which FAISS index holds a generation's vectors, chosen by size.

- Up to `EXACT_LIMIT` vectors: exact search, `IDMap2(FlatIP)`. A single query scans every
  vector; that stays within a couple of milliseconds up to about that size on 2 cores
  (benchmarks/RESULTS.md, "Scale").
- Above it: `IVFFlat` (inverted lists over spherical k-means centroids, inner product).
  Chosen over HNSW because IVF supports `remove_ids` and `add_with_ids` in place, so a
  nightly update of a million-vector index removes and adds only what changed (HNSW in
  FAISS cannot remove ids and costs minutes to rebuild at 1M). Vectors stay uncompressed
  (Flat codes): scores are the same exact cosines, only the candidate set is approximate,
  and `reconstruct(id)` keeps working through a hash-table direct map.

`fit()` runs once per generation, at commit: it switches kind when the size crosses the
limit (with hysteresis, so a size hovering at the limit does not flip every night) and
retrains the centroids when the collection has grown or shrunk a lot since they were
trained. `VectorIndex` wraps an opened index for queries.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Exact single-query search costs ~0.07 ms per 1,000 vectors (d=384, 1 thread): ~7 ms at
# 100k. IVF must still scan ~64k vectors for recall@10 >= 0.98 (below), so it pays off
# only well above that: at 200k it scans a third, at 1M a sixteenth.
EXACT_LIMIT = 200_000
# Vectors an IVF search scans. benchmarks/scale.py's nprobe sweep (real queries against
# real + synthetic case vectors): recall@10 vs exact reached 0.987 at 100k scanning 50k
# vectors (nprobe 128 of 256) and 0.988 at 1M scanning 62k (nprobe 64 of 1,024); recall
# follows the number of vectors scanned far more than the share of lists.
SCAN_VECTORS = 64_000
MIN_NPROBE = 8
# k-means sample: FAISS warns below ~39 points per centroid; 64 is plenty for spherical
# centroids and keeps training at 1M vectors to seconds rather than minutes on 2 cores.
TRAIN_POINTS_PER_CENTROID = 64
TRAIN_ITERATIONS = 20


def _faiss() -> Any:
    import faiss

    return faiss


def new_index(dimension: int) -> Any:
    """An empty exact index; `fit()` decides later whether it should become approximate."""
    faiss = _faiss()
    # inner product == cosine: every vector is L2-normalised before it is added.
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


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
    """A short description for the manifest ("IDMap2,Flat" or "IVF1024,Flat/nprobe=64")."""
    ivf = _ivf(index)
    if ivf is None:
        return "IDMap2,Flat"
    return f"IVF{ivf.nlist},Flat/nprobe={ivf.nprobe}"


def memory_bytes(index: Any) -> int:
    """Approximate resident size of the vectors and their ids (the index's bulk)."""
    ivf = _ivf(index)
    per_vector = index.d * 4 + 8  # float32 codes + int64 id
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
        if count <= exact_limit:
            return index
        ids, vectors = _contents(index)
        return _build_ivf(ids, vectors)
    if count < exact_limit // 2:
        ids, vectors = _contents(index)
        flat = new_index(index.d)
        if count:
            flat.add_with_ids(vectors, ids)
        return flat
    wanted = nlist_for(count)
    if max(wanted / ivf.nlist, ivf.nlist / wanted) >= 4:
        ids, vectors = _contents(index)
        return _build_ivf(ids, vectors)
    ivf.nprobe = nprobe_for(ivf.nlist, count)  # lists grow with the collection
    return index


def _ivf(index: Any) -> Any:
    faiss = _faiss()
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _build_ivf(ids: np.ndarray, vectors: np.ndarray) -> Any:
    faiss = _faiss()
    count, dimension = vectors.shape
    nlist = nlist_for(count)
    quantizer = faiss.IndexFlatIP(dimension)
    ivf = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.own_fields = True
    quantizer.this.disown()  # the IVF index owns (and frees) its quantizer now
    # Spherical k-means: centroids renormalised each iteration, as the data are unit vectors.
    ivf.cp.spherical = True
    ivf.cp.niter = TRAIN_ITERATIONS
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_CENTROID
    ivf.cp.seed = 1234  # reproducible builds
    ivf.train(vectors)
    # reconstruct(id) (search.py reads case vectors back) needs an id -> entry map; the
    # hash-table kind is the one that still allows remove_ids.
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    ivf.add_with_ids(vectors, ids)
    ivf.nprobe = nprobe_for(nlist, count)
    return ivf


def _contents(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every entry, in storage order."""
    faiss = _faiss()
    ivf = _ivf(index)
    if ivf is None:
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        vectors = faiss.vector_to_array(faiss.downcast_index(index.index).codes).view(np.float32)
        return ids, vectors.reshape(-1, index.d).copy()
    lists = ivf.invlists
    id_parts, vector_parts = [], []
    for number in range(ivf.nlist):
        size = lists.list_size(number)
        if not size:
            continue
        id_parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
        codes = faiss.rev_swig_ptr(lists.get_codes(number), size * lists.code_size)
        vector_parts.append(np.frombuffer(codes.copy(), dtype=np.float32).reshape(size, -1))
    if not id_parts:
        return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
    return np.concatenate(id_parts).astype(np.int64), np.concatenate(vector_parts)


class VectorIndex:
    """An opened generation's vectors: the FAISS index plus what single queries need.

    It behaves like the FAISS index (attributes are forwarded) with one difference in
    `search`: plain `faiss.SearchParameters` (an id filter) are translated for IVF, whose
    search refuses them and whose own parameter object would silently reset nprobe to 1.
    """

    def __init__(self, index: Any) -> None:
        self.index = index
        self._ivf = _ivf(index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        return "flat" if self._ivf is None else "ivf"

    def search(self, queries: np.ndarray, k: int, *, params: Any = None) -> tuple[Any, Any]:
        faiss = _faiss()
        if self._ivf is not None and params is not None:
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

    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[Any, Any]:
        faiss = _faiss()
        if len(queries) != 1:
            return self.index.search(queries, k, params=params)
        # One query uses one thread anyway; an OpenMP team only adds wake-up latency and
        # spinning threads that steal the CPU from torch (PERF-NOTES: "thread gotcha").
        # The setting is per calling thread in libgomp; restore it so torch keeps its own.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self.index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)


__all__ = [
    "EXACT_LIMIT",
    "VectorIndex",
    "describe",
    "fit",
    "kind",
    "memory_bytes",
    "new_index",
    "nlist_for",
    "nprobe_for",
]
