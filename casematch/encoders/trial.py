"""Which runtime each job gets on this machine, decided by a short timed trial.

Building an index encodes batches; answering a query encodes one short text. The fastest
runtime is not the same for both: on an AVX-512-BF16 EPYC bf16 autocast encoded batches
x2.3-2.7 faster than fp32 and ONNX Runtime x1.7, while one query took 3.6 ms with ONNX
Runtime against 8.3 ms with bf16 (benchmarks/RESULTS.md, "Encoder runtimes"); on an
AVX2-only EPYC ONNX Runtime won both. CPU flags cannot tell that apart, so the first time
a job needs a runtime the candidates are timed on a few texts (seconds), checked against
fp32 (the quality gate), and the result is cached per machine: CPU model and flags, core
count, library versions and model. `casematch doctor` shows it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from casematch.encoders.bundle import cache_dir
from casematch.encoders.runtime import BF16_CPU_FLAGS, choose_runtime, cpu_flags
from casematch.version import __version__

log = logging.getLogger(__name__)

JOBS = ("batch", "query")
# 2: the ONNX query session's threads and spinning are measured too; 3: and its weights.
TRIAL_VERSION = 3
# The quality gate of benchmarks/encode.py: every vector within this cosine of fp32's.
MIN_COSINE = 0.999
_CACHE_FILE = "runtimes.json"
_LIBRARIES = ("torch", "onnxruntime", "sentence-transformers", "transformers", "tokenizers",
              "numpy")
# Support-case-like texts of mixed lengths: what an index encodes, and what a query is.
_TEXTS = (
    "Upgrade Netty to fix a CVE",
    "Printer on floor 3 shows paper jam but the tray is empty",
    "VPN disconnects every 10 minutes since the client update; reinstalling did not help",
    "How do I reset my password when the reset email never arrives?",
    "Build fails with OutOfMemoryError in the Gradle daemon after upgrading to JDK 21. "
    "Increasing -Xmx to 4g did not help and the failure happens only on CI agents.",
    "Customer reports duplicate charges on the March invoice; the payment provider shows "
    "one capture and one authorisation that was never released.",
    "Kubernetes pod stuck in CrashLoopBackOff: the readiness probe times out because the "
    "service waits for the database migration lock held by an old replica.",
    "Slack notifications stopped for the on-call channel after the webhook URL rotated; "
    "alerts still show in the dashboard. We need them back before tonight's release.",
)
# A build encodes mostly long windows (up to 256 tokens), where bf16's matmuls gain most;
# a query is one short text. Long texts: the short ones run together, about 250 tokens.
_LONG = tuple(" ".join(_TEXTS[i:] + _TEXTS[:i]) for i in range(len(_TEXTS)))


@dataclass(frozen=True)
class Measurement:
    """One runtime's trial: batch throughput, one-query latency, worst cosine to fp32."""

    runtime: str
    batch_texts_per_s: float
    query_ms: float
    min_cosine: float

    @property
    def passed(self) -> bool:
        return self.min_cosine >= MIN_COSINE


# An ONNX Runtime query session: (intra-op threads, spinning, weights "fp32" or "int8").
Session = tuple[int, bool, str]


class SessionTimings(NamedTuple):
    """One query's median ms per session, and how close the int8 graph's vectors are."""

    ms: dict[Session, float]
    int8_cosine: float | None  # worst cosine to the fp32 graph's; None: no int8 graph


Measure = Callable[[str, str], dict[str, Measurement]]
MeasureSessions = Callable[[str, str], SessionTimings]


@functools.cache
def _installed() -> dict[str, str]:
    # One listing per import path instead of `importlib.metadata.version` per package
    # (~20 ms each): the query path checks these on every cold start.
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                package, _, version = name[: -len(".dist-info")].rpartition("-")
                found.setdefault(package.lower().replace("_", "-"), version)
    return found


def library_version(package: str) -> str | None:
    """The installed version of `package` (without importing it), or None."""
    found = _installed().get(package.lower().replace("_", "-"))
    if found is not None:
        return found
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(model: str, device: str = "cpu") -> dict[str, Any]:
    """What a trial result depends on (read from package metadata: imports nothing heavy)."""
    flags = cpu_flags()
    return {
        "trial": TRIAL_VERSION,
        "cpu": cpu_model(),
        "flags": sorted(flags & (BF16_CPU_FLAGS | {"avx2", "avx512f", "avx512_vnni"})),
        "cores": os.cpu_count(),
        "device": device,
        "model": model,
        "casematch": __version__,
        **{name: library_version(name) for name in _LIBRARIES},
    }


def _cache_path() -> Path:
    return cache_dir() / _CACHE_FILE


def _records() -> list[dict[str, Any]]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    records = data.get("records") if isinstance(data, dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def cached_trial(model: str, device: str = "cpu") -> dict[str, Any] | None:
    """The trial recorded for this machine, model and libraries, or None."""
    key = machine_key(model, device)
    for record in _records():
        if record.get("machine") == key:
            return record
    return None


def pick(measurements: dict[str, Measurement], job: str) -> str:
    """The fastest runtime for `job` among those that passed the quality gate."""
    passed = [m for m in measurements.values() if m.passed]
    if not passed:
        return "fp32"
    if job == "batch":
        return max(passed, key=lambda m: m.batch_texts_per_s).runtime
    return min(passed, key=lambda m: m.query_ms).runtime


def pick_session(timings: SessionTimings) -> dict[str, Any] | None:
    """The fastest ONNX Runtime session for one query, or None when none ran. The int8
    graph competes only when its vectors passed the quality gate."""
    int8_passed = timings.int8_cosine is not None and timings.int8_cosine >= MIN_COSINE
    allowed = {session: ms for session, ms in timings.ms.items()
               if session[2] == "fp32" or int8_passed}
    if not allowed:
        return None
    threads, spinning, weights = min(allowed, key=lambda session: allowed[session])
    return {"threads": threads, "spinning": spinning, "weights": weights,
            "int8_min_cosine": timings.int8_cosine, "int8_passed": int8_passed,
            "ms": {session_label(session): ms for session, ms in sorted(timings.ms.items())}}


def session_label(session: Session) -> str:
    threads, spinning, weights = session
    return (f"{threads} thread{'s' if threads > 1 else ''}, "
            f"spinning {'on' if spinning else 'off'}, {weights}")


def run_trial(model: str, device: str = "cpu", *, measure: Measure | None = None,
              measure_sessions: MeasureSessions | None = None) -> dict[str, Any]:
    """Time the candidates now, record the choice per job in the cache, and return it."""
    started = time.perf_counter()
    measurements = (measure or measure_runtimes)(model, device)
    choice = {job: pick(measurements, job) for job in JOBS}
    session = None
    if choice["query"] == "onnx":
        try:
            session = pick_session((measure_sessions or measure_query_sessions)(model, device))
        except Exception as exc:  # the defaults serve; the runtime choice still holds
            log.warning("runtime trial: ONNX query session settings not measured (%s)", exc)
    record = {
        "machine": machine_key(model, device),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
        "choice": choice,
        "measurements": {name: {**asdict(m), "passed": m.passed}
                         for name, m in measurements.items()},
        "query_session": session,
    }
    log.info("runtime trial for %s: %s (%.1f s)", model, record["choice"], record["seconds"])
    _save(record)
    return record


def _save(record: dict[str, Any]) -> None:
    records = [r for r in _records() if r.get("machine") != record["machine"]]
    records.append(record)
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".runtimes-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"records": records[-20:]}, handle, indent=2)
        os.replace(tmp, path)
    except OSError as exc:  # an unwritable cache costs a trial per process, nothing more
        log.warning("cannot record the runtime trial in %s: %s", path, exc.strerror)


def runtime_for(job: str, runtime: str = "auto", *, model: str, device: str = "cpu",
                measure: Measure | None = None) -> tuple[str, str]:
    """The runtime for `job` ("batch" or "query") and where the choice came from.

    An explicit runtime wins ("setting"); GPUs keep fp32 ("device"); otherwise the
    recorded trial ("measured"), running it the first time. When the trial cannot run
    (no torch, say) the CPU-flag rule of `choose_runtime` decides ("cpu flags").
    """
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}")
    explicit = choose_runtime(runtime, device=device)
    if runtime != "auto":
        return explicit, "setting"
    if not device.startswith("cpu"):
        return explicit, "device"
    record = cached_trial(model, device)
    if record is None:
        try:
            record = run_trial(model, device, measure=measure)
        except Exception as exc:  # a trial that cannot run must not stop the job
            log.warning("runtime trial failed (%s); choosing by CPU flags", exc)
            return _prior(job, explicit), "cpu flags"
    return str(record["choice"][job]), "measured"


def query_session(model: str, device: str = "cpu",
                  runtime: str = "auto") -> tuple[int | None, bool, str]:
    """(intra-op threads, spinning, weights) for the ONNX query session: the trial's, else
    the defaults (fp32 weights). A runtime set by name gets the fp32 graph, whose vectors
    are the torch encoder's: the int8 graph is the trial's choice only.

    Never runs a trial: the query runtime's own choice (`runtime_for`) already has.
    """
    record = cached_trial(model, device)
    session = record.get("query_session") if record else None
    if isinstance(session, dict) and isinstance(session.get("threads"), int):
        int8 = session.get("weights") == "int8" and runtime == "auto"
        return int(session["threads"]), bool(session.get("spinning")), \
            "int8" if int8 else "fp32"
    return None, False, "fp32"


def _prior(job: str, batch_choice: str) -> str:
    # Both measured machines answered single queries fastest with ONNX Runtime.
    if job == "query":
        from casematch.encoders.onnx import onnxruntime_available

        return "onnx" if onnxruntime_available() else batch_choice
    return batch_choice


def measure_runtimes(model: str, device: str = "cpu") -> dict[str, Measurement]:
    """Time fp32, bf16 (on CPUs with native bf16 only) and onnx on the trial texts.

    Batch: 8 short texts and 8 of about 250 tokens in one call, best of two. Query: the
    short texts one at a time, median of 16,
    as an opened index serves it (torch on one thread, the ONNX query encoder for onnx).
    Emulated bf16 is not timed: it ran slower than fp32 wherever it was measured.
    """
    from casematch.encoders.onnx import onnxruntime_available, supports
    from casematch.encoders.sbert import SentenceTransformerEncoder

    base = SentenceTransformerEncoder(model, device=device, runtime="fp32")
    candidates: dict[str, Any] = {"fp32": base}
    if cpu_flags() & BF16_CPU_FLAGS:
        candidates["bf16"] = base.with_runtime("bf16")
    if onnxruntime_available() and supports(base._model_dir):
        try:
            from casematch.encoders.bundle import OnnxQueryEncoder

            candidates["onnx"] = base.with_runtime("onnx")
            query_onnx = OnnxQueryEncoder(base.query_bundle(), base.name)
        except Exception as exc:  # the exporter raises many kinds: leave onnx out
            log.warning("runtime trial: onnx left out (%s)", exc)
            candidates.pop("onnx", None)
    texts = list(_TEXTS + _LONG)
    reference = base.encode(texts)
    singles = {name: query_onnx if name == "onnx" else encoder
               for name, encoder in candidates.items()}
    for encoder in candidates.values():
        encoder.encode(texts[:4])  # warm-up: first calls allocate
    batch: dict[str, list[float]] = {name: [] for name in candidates}
    query: dict[str, list[float]] = {name: [] for name in candidates}
    cosine: dict[str, float] = {}
    # Interleaved rounds, so a neighbour's burst of load hits every candidate alike.
    for _ in range(2):
        for name, encoder in candidates.items():
            start = time.perf_counter()
            vectors = encoder.encode(texts)
            batch[name].append(time.perf_counter() - start)
            cosine[name] = float((vectors * reference).sum(axis=1).min())
        for name, single in singles.items():
            query[name] += _query_seconds(single, torch_runtime=name != "onnx")
    return {name: Measurement(name, round(len(texts) / min(batch[name]), 2),
                              round(statistics.median(query[name]) * 1000, 3),
                              round(cosine[name], 6))
            for name in candidates}


def measure_query_sessions(model: str, device: str = "cpu") -> SessionTimings:
    """One query's median ms with ONNX Runtime on one thread and on every core (up to
    `session_threads()`), each with and without spinning threads, with the fp32 graph and
    (where the bundle has one) the int8 graph; and the int8 graph's worst cosine to fp32's
    on the trial texts, short and long.

    Which wins depends on the machine and on what else runs there: on 2 EPYC cores a
    ~30-token query took 10.4 ms on one thread and 6.7 ms on two without spinning, 5.5
    with it, while beside a busy process spinning had cost 17 ms against 11 without
    (benchmarks/RESULTS.md, "Cold start (issue 18)"). int8 products run on VNNI where
    the CPU has it, and may lose elsewhere. So the trial times them here, now.
    """
    from casematch.encoders import query_model_folder
    from casematch.encoders.bundle import OnnxQueryEncoder, session_threads

    folder = query_model_folder(model)
    if folder is None:
        raise RuntimeError(f"no ONNX query model for {model} in the cache")
    encoders = {}
    for weights in ("fp32", "int8"):
        for threads in sorted({1, session_threads()}):
            for spinning in (False, True):
                encoder = OnnxQueryEncoder(folder, model, threads=threads, spinning=spinning,
                                           weights=weights)
                if encoder.weights == weights:  # an older bundle has no int8 graph
                    encoders[(threads, spinning, weights)] = encoder
    int8_cosine = None
    gate = list(_TEXTS + _LONG)
    fp32 = next(e for (_, _, w), e in encoders.items() if w == "fp32").encode(gate)
    int8 = next((e for (_, _, w), e in encoders.items() if w == "int8"), None)
    if int8 is not None:
        int8_cosine = round(float((int8.encode(gate) * fp32).sum(axis=1).min()), 6)
    texts = [*_TEXTS, _LONG[0][:400]]
    for encoder in encoders.values():
        encoder.encode(texts[:2])  # warm-up: first calls allocate
    times: dict[Session, list[float]] = {session: [] for session in encoders}
    # Interleaved text by text, so a neighbour's burst of load hits every setting alike.
    for _ in range(3):
        for text in texts:
            for session, encoder in encoders.items():
                start = time.perf_counter()
                encoder.encode([text])
                times[session].append(time.perf_counter() - start)
    return SessionTimings({session: round(statistics.median(t) * 1000, 3)
                           for session, t in times.items()}, int8_cosine)


def _query_seconds(encoder: Any, *, torch_runtime: bool) -> list[float]:
    import torch

    before = torch.get_num_threads()
    if torch_runtime:
        torch.set_num_threads(1)  # as `serve_queries_on_one_thread` runs queries
    try:
        times = []
        for text in _TEXTS[:8]:
            start = time.perf_counter()
            encoder.encode([text])
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return times


def summary(record: dict[str, Any] | None) -> dict[str, Any]:
    """The recorded trial as `stats` and `doctor` show it."""
    if record is None:
        return {"measured": False}
    return {"measured": True, "measured_at": record.get("measured_at"),
            "trial_seconds": record.get("seconds"),
            "choice": record.get("choice"), "measurements": record.get("measurements"),
            "query_session": record.get("query_session")}


def runtime_summary(model: str, runtime: str = "auto", device: str = "cpu") -> dict[str, Any]:
    """The runtime each job gets and why, without running a trial (for `stats`)."""
    record = cached_trial(model, device)
    out = {"setting": runtime, **summary(record)}
    if runtime != "auto":
        out["choice"] = {job: runtime for job in JOBS}
        out["source"] = "set by runtime / CASEMATCH_RUNTIME"
    elif not device.startswith("cpu"):
        out["choice"] = {job: choose_runtime(runtime, device=device) for job in JOBS}
        out["source"] = f"device {device}"
    elif record is None:
        out["choice"] = {job: "not measured" for job in JOBS}
        out["source"] = "measured by the first build or query on this machine"
    else:
        out["source"] = f"measured on this machine {record.get('measured_at')}"
    return out
