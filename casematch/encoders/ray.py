"""Embedding on a Ray cluster: the same model and runtime, on many workers.

`RayEncoder` is an `Encoder`: the index writer on the driver calls `encode()` with only the
texts that need embedding (changed and new ones), and gets the vectors back in order, so the
generation, lock and crash rules stay those of a local build. Inside, the texts become a Ray
Data dataset, one block per batch, mapped by an actor pool of encoders: one actor per GPU
where the cluster has GPUs, else one per CPU. Each actor loads the same model folder with the
same runtime choice as the local encoder. Where the folder is not on the worker (a cluster
that does not share the image), the driver ships its files through the object store, so no
worker downloads anything.

A worker that dies mid-batch is restarted and its batch retried (`max_restarts`,
`max_task_retries`); if the driver dies, nothing was published and the old generation
keeps serving.

`ray` is an optional extra: `pip install "casematch[ray]"`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from casematch.encoders.models import DEFAULT_BATCH_SIZE, Encoder, resolve_model_path
from casematch.encoders.sbert import SentenceTransformerEncoder
from casematch.errors import ConfigError, MissingDependencyError

# Texts per Ray task: big enough that a task's scheduling (~ms) is small next to its
# encoding (~1 s for 256 short texts on one core), small enough that a retried batch or the
# last straggler costs little.
DEFAULT_RAY_BATCH = 256
LOCAL_ADDRESSES = ("", "local")

log = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray

        # Now rather than on first use: importing it sets up Ray Data's loggers (levels
        # included), which `encode` then quiets.
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            f"embedding on Ray needs ray ({exc}): pip install \"casematch[ray]\"") from exc
    return ray


def connect(address: str | None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at `address` ("auto": the one this host belongs to), or start a
    local one (None, "" or "local") with `num_cpus` CPUs. A no-op when already connected."""
    ray = _ray()
    if ray.is_initialized():
        return
    if address in (None, *LOCAL_ADDRESSES):
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        return
    package = str(Path(__file__).resolve().parents[1])
    try:
        # The driver's own casematch goes with the job, so workers run the same code; they
        # need only the libraries (`pip install "casematch[ray]"` in the cluster's image).
        ray.init(address=address, runtime_env={"py_modules": [package]},
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc}. Use "
                          "'auto' on a cluster node, or ray://HOST:10001") from exc


def model_files(folder: Path) -> dict[str, bytes]:
    """Every file of a model folder, by relative path: what is shipped to the workers."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.parts}


def unpack_model(files: dict[str, bytes], parent: Path | None = None) -> Path:
    """Write shipped model files to a folder named by their content (reused when present)."""
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    target = (parent or Path(tempfile.gettempdir())) / f"casematch-model-{digest.hexdigest()[:16]}"
    if (target / ".complete").exists():
        return target
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    for name, data in files.items():
        path = partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (partial / ".complete").touch()
    try:
        partial.rename(target)
    except OSError:  # another actor on this node unpacked it first
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    return target


class EncodeWorker:
    """One Ray actor: loads the model once, then encodes the batches it is given."""

    def __init__(self, model_path: str, shipped: list[Any], runtime: str, batch_size: int,
                 crash_marker: str | None = None) -> None:
        ray = _ray()
        gpus = ray.get_gpu_ids()
        device = "cuda" if gpus else "cpu"
        path = Path(model_path)
        if not (path / "config.json").exists():
            if not shipped:
                raise ConfigError(f"model folder {model_path} is not on this Ray worker; "
                                  "ship it (ship_model=True) or install it on every node")
            path = unpack_model(ray.get(shipped[0]))
        self.encoder = SentenceTransformerEncoder(
            str(path), device=device, batch_size=batch_size,
            # The local choice, except that a GPU worker picks its own (fp32 on CUDA).
            runtime=runtime if device == "cpu" else "auto")
        # For fault drills: the worker holding a batch exits when this file exists
        # (removing it first, so that the restarted worker carries on), as a lost node would.
        self.crash_marker = crash_marker

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.crash_marker and os.path.exists(self.crash_marker):
            try:
                os.remove(self.crash_marker)
            except FileNotFoundError:
                pass
            else:
                os._exit(1)
        vectors = self.encoder.encode([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": vectors}


class RayEncoder:
    """An `Encoder` whose `encode()` runs on a Ray cluster; the rest is the local encoder's.

    Args:
        local: the encoder the index would use locally (name, dimension, chunking, runtime).
        address: a Ray address, "auto" for the cluster this host belongs to, None or "local"
            for a local Ray started here (`num_cpus` CPUs).
        workers: actors in the pool; default one per GPU, else one per CPU of the cluster.
        cpus_per_worker: CPUs each CPU actor reserves (its torch threads).
        batch_size: texts per Ray task (each task is one batch, retried as a whole).
        ship_model: send the model files through the object store; default only when
            joining an existing cluster (a local Ray shares this host's files).
        crash_marker: a file whose existence makes the next worker to see it exit (drills).
        model_path: the model folder the workers load (default: where `local.name` is).
    """

    def __init__(self, local: Encoder, address: str | None = None, *,
                 workers: int | None = None, cpus_per_worker: int = 1,
                 batch_size: int = DEFAULT_RAY_BATCH, num_cpus: int | None = None,
                 ship_model: bool | None = None, crash_marker: str | None = None,
                 model_path: str | None = None) -> None:
        self.local = local
        # The folder the workers load; by default where `local.name` resolves. A model
        # tuned into an index is named relative to the index, so its caller passes it.
        self.model_path = model_path
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.ray_batch_size = batch_size
        self.num_cpus = num_cpus
        self.ship_model = address not in (None, *LOCAL_ADDRESSES) if ship_model is None \
            else ship_model
        self.crash_marker = crash_marker
        # Texts sent to the cluster so far: what an incremental reindex is judged by.
        self.sent = 0
        self._shipped: list[Any] = []

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def dimension(self) -> int:
        return self.local.dimension

    @property
    def runtime(self) -> str:
        return str(getattr(self.local, "runtime", None) or "auto")

    def chunk(self, text: str) -> list[str]:
        return self.local.chunk(text)

    def _pool(self) -> tuple[int, dict[str, Any]]:
        """(actors, resources per actor): one per GPU where there are GPUs, else per CPU."""
        ray = _ray()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus:
            return self.workers or gpus, {"num_gpus": 1}
        cpus = int(resources.get("CPU", 1))
        return (self.workers or max(1, cpus // self.cpus_per_worker),
                {"num_cpus": self.cpus_per_worker})

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        model_path = self.model_path or resolve_model_path(self.local.name)
        if self.ship_model and not (Path(model_path) / "config.json").is_file():
            raise ConfigError(f"model {self.local.name!r} is not a local folder, so it cannot be "
                              "shipped to the Ray workers; download it to a folder and pass "
                              "that folder as the model")
        connect(self.address, num_cpus=self.num_cpus)
        ray = _ray()
        import pyarrow as pa

        # A CLI run shows its own progress bar; Ray Data's per-dataset notes are noise there.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        if self.ship_model and not self._shipped:
            # Held for this encoder's life: a restarted actor fetches the files again.
            self._shipped = [ray.put(model_files(Path(model_path)))]
        # Longest first, as the local encoder does within a call: each Ray batch then holds
        # texts of similar length, which pad little. The row number restores the order.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        size = self.ray_batch_size
        blocks = [pa.table({"row": order[i:i + size],
                            "text": [texts[j] for j in order[i:i + size]]})
                  for i in range(0, len(texts), size)]
        actors, resources = self._pool()
        actors = min(actors, len(blocks))  # an idle actor would only load the model
        dataset = ray.data.from_arrow(blocks).map_batches(
            EncodeWorker,
            fn_constructor_kwargs={
                "model_path": model_path, "shipped": self._shipped,
                "runtime": self.runtime,
                "batch_size": int(getattr(self.local, "batch_size", DEFAULT_BATCH_SIZE)),
                "crash_marker": self.crash_marker},
            batch_size=size, batch_format="numpy",
            # Ray Data restarts a dead actor and retries its batch by default
            # (max_restarts=-1, max_task_retries=-1 on the pool's actors); a batch fails for
            # good only on an error raised by the model itself. tests/test_ray.py checks it.
            compute=ray.data.ActorPoolStrategy(size=actors), **resources)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc=f"Embedding on Ray ({actors} workers)",
                       unit="text", unit_scale=True)
        started = time.perf_counter()
        done = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            out[batch["row"]] = batch["vector"]
            done += len(batch["row"])
            if bar is not None:
                bar.update(len(batch["row"]))
        if bar is not None:
            bar.close()
        if done != len(texts):
            raise RuntimeError(f"Ray returned {done} vectors for {len(texts)} texts")
        self.sent += len(texts)
        log.info("embedded %d texts on Ray in %.1f s", len(texts), time.perf_counter() - started)
        return out
