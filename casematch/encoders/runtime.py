"""Which runtime encodes on this machine: fp32, bf16 autocast or ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

from casematch.errors import ConfigError

# "auto" picks the fastest runtime that passed the quality gate (cosine to fp32 >= 0.999,
# top-10 overlap >= 0.98 on real text; benchmarks/encode.py) on this machine.
RUNTIMES = ("auto", "fp32", "bf16", "onnx")
# CPU flags with native bf16 matmuls. Without them torch emulates bf16 and autocast is
# slower than fp32 (measured on an AVX2-only EPYC: benchmarks/RESULTS.md, "Encoder runtimes").
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
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
    if flags & BF16_CPU_FLAGS:
        return "bf16"
    if onnx is None:
        from casematch.encoders.onnx import onnxruntime_available

        onnx = onnxruntime_available()
    return "onnx" if onnx else "fp32"

