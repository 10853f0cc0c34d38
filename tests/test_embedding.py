"""Encoder runtime selection, and bf16 vectors staying close to fp32 with the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, make_case

from casematch.encoders import DEFAULT_MODEL_NAME, choose_runtime, cpu_flags
from casematch.encoders.sbert import SentenceTransformerEncoder
from casematch.errors import ConfigError


def test_forced_runtime_wins_over_the_cpu() -> None:
    assert choose_runtime("fp32", flags=frozenset({"amx_bf16"})) == "fp32"
    assert choose_runtime("bf16", flags=frozenset()) == "bf16"


def test_auto_picks_bf16_only_with_native_bf16() -> None:
    assert choose_runtime("auto", flags=frozenset({"avx512_bf16", "avx512f"})) == "bf16"
    assert choose_runtime("auto", flags=frozenset({"amx_bf16"})) == "bf16"
    # AVX2 or plain AVX512: bf16 is emulated and slower than fp32; ONNX fp32 where installed.
    assert choose_runtime("auto", flags=frozenset({"avx2", "avx512f"}), onnx=False) == "fp32"
    assert choose_runtime("auto", flags=frozenset({"avx2", "avx512f"}), onnx=True) == "onnx"
    assert choose_runtime("auto", flags=frozenset({"amx_bf16"}), onnx=True) == "bf16"
    assert choose_runtime("auto", device="cuda", flags=frozenset({"amx_bf16"})) == "fp32"


def test_unknown_runtime_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="auto, fp32, bf16, onnx"):
        choose_runtime("int8")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n", encoding="utf-8")
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "amx_bf16"})
    assert cpu_flags(tmp_path / "missing") == frozenset()


SENTENCES = [
    "The nightly sync job fails with a timeout when connecting to Postgres over SSH.",
    "After upgrading to 2.49.5 I cannot edit old web pages in the composer anymore.",
    "How do I make text strikethrough in GitHub markdown?",
    "Kafka consumer lag keeps growing although the connector reports it is running.",
]


@pytest.mark.model
def test_bf16_vectors_are_close_to_fp32_and_keep_the_model_name(
        real_encoder: SentenceTransformerEncoder) -> None:
    bf16 = SentenceTransformerEncoder(runtime="bf16")
    assert bf16.name == real_encoder.name == DEFAULT_MODEL_NAME
    reference = SentenceTransformerEncoder(runtime="fp32").encode(SENTENCES)
    vectors = bf16.encode(SENTENCES)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.999


def test_runtime_setting_is_read_from_env_and_toml(tmp_path: Path) -> None:
    from casematch.config import Settings

    assert Settings.load(env={}).runtime == "auto"
    assert Settings.load(env={"CASEMATCH_RUNTIME": "fp32"}).runtime == "fp32"
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\nruntime = "bf16"\n', encoding="utf-8")
    assert Settings.load(config, env={}).runtime == "bf16"
    assert Settings.load(config, env={"CASEMATCH_RUNTIME": "fp32"}).runtime == "fp32"


@pytest.mark.model
def test_load_encoder_honours_a_forced_runtime(
        real_encoder: SentenceTransformerEncoder) -> None:
    from casematch.encoders import load_encoder

    assert real_encoder.runtime == choose_runtime("auto")
    forced = {runtime: load_encoder("default", runtime=runtime) for runtime in ("fp32", "bf16")}
    assert forced["fp32"].runtime == "fp32" and forced["bf16"].runtime == "bf16"
    assert forced["fp32"] is not forced["bf16"]  # one shared encoder per runtime
    assert load_encoder("default", runtime="bf16") is forced["bf16"]


class _Loaded(Exception):
    pass


def test_reindex_builds_with_the_runtime_setting(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import casematch.sync.reindex
    from casematch.config import Settings, SourceConfig

    seen: dict[str, object] = {}

    def fake_load_encoder(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise _Loaded

    monkeypatch.setattr(casematch.sync.reindex, "load_encoder", fake_load_encoder)
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "1", "problem": "printer jam"}\n', encoding="utf-8")
    settings = Settings.load(env={"CASEMATCH_RUNTIME": "bf16"}, index_path=tmp_path / "index",
                             sources=(SourceConfig(type="jsonl", path=str(cases)),))
    with pytest.raises(_Loaded):
        casematch.sync.reindex.reindex(settings)
    assert seen.get("runtime") == "bf16"


def test_an_opened_index_loads_its_model_with_the_runtime_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import casematch.index
    from casematch.index import CaseIndex

    CaseIndex.build([make_case("1", "printer jam", "replace the fuser")], tmp_path / "idx",
                    encoder=FakeEncoder())
    seen: dict[str, object] = {}

    def fake_load_encoder(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise _Loaded

    monkeypatch.setattr(casematch.index, "load_query_encoder", fake_load_encoder)
    index = CaseIndex.open(tmp_path / "idx", runtime="fp32")
    with pytest.raises(_Loaded):
        index.search("printer")  # the model loads on the first search
    assert seen.get("runtime") == "fp32"


def test_only_an_explicit_request_runs_torch_on_one_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import casematch.index
    from casematch.index import CaseIndex, serve_queries_on_one_thread

    monkeypatch.setattr(casematch.index, "load_query_encoder", lambda *a, **k: FakeEncoder())

    CaseIndex.build([make_case("1", "printer jam", "replace the fuser")], tmp_path / "idx",
                    encoder=FakeEncoder())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        index = CaseIndex.open(tmp_path / "idx")
        index.search("printer jam")  # loads the (fake) model and searches
        assert torch.get_num_threads() == 2  # a library call leaves the process as it was
        serve_queries_on_one_thread()  # what the CLI and the responder ask for
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_casematch_index_encodes_with_the_configured_device_runtime_and_batch_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import casematch.sync.build
    from casematch.cli import cli

    seen: dict[str, object] = {}

    def fake_load_encoder(*args: object, **kwargs: object) -> FakeEncoder:
        seen.update(kwargs)
        return FakeEncoder()

    monkeypatch.setattr(casematch.sync.build, "load_encoder", fake_load_encoder)
    monkeypatch.delenv("CASEMATCH_INDEX", raising=False)
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "1", "problem": "printer jam", "resolution": "fuser"}\n',
                     encoding="utf-8")
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\npath = "idx"\nbatch_size = 8\nruntime = "fp32"\n',
                      encoding="utf-8")
    result = CliRunner().invoke(cli, ["index", str(cases), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (seen["batch_size"], seen["runtime"], seen["device"]) == (8, "fp32", "cpu")


LONG = " ".join(["The connector retries the Postgres handshake and logs SSL SYSCALL EOF."] * 60)


@pytest.mark.model
def test_onnx_vectors_match_fp32_row_for_row(real_encoder: SentenceTransformerEncoder) -> None:
    onnx = SentenceTransformerEncoder(runtime="onnx", batch_size=2)
    assert onnx.runtime == "onnx" and onnx.name == real_encoder.name
    # Mixed lengths over several small batches: the length sort must not reorder rows.
    texts = [SENTENCES[0], LONG, "vpn", *SENTENCES[1:]]
    reference = SentenceTransformerEncoder(runtime="fp32").encode(texts)
    vectors = onnx.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.sum(vectors * reference, axis=1).min() >= 0.99999
    assert onnx.encode([]).shape == (0, onnx.dimension)


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.model
def test_the_onnx_export_runs_fused_attention(real_encoder: SentenceTransformerEncoder) -> None:
    onnx = SentenceTransformerEncoder(runtime="onnx")
    # ONNX Runtime's own kernels, one per layer, in place of the traced matmul/softmax ops.
    assert {"Attention", "SkipLayerNormalization"} <= _op_types(onnx._onnx.path)


@pytest.mark.model
@pytest.mark.parametrize("failure", ["optimizer raises", "outputs change"])
def test_a_fusion_that_fails_keeps_the_plain_export(
        failure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime.transformers.optimizer

    import casematch.encoders.onnx

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    if failure == "optimizer raises":
        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("unsupported graph")

        monkeypatch.setattr(onnxruntime.transformers.optimizer, "optimize_model", broken)
    else:
        # Any difference at all now counts as a changed result.
        monkeypatch.setattr(casematch.encoders.onnx, "FUSION_TOLERANCE", -1.0)
    plain = SentenceTransformerEncoder(runtime="onnx")
    assert "using the plain export" in caplog.text
    assert "Attention" not in _op_types(plain._onnx.path)
    assert list((tmp_path / "cache").rglob("*.fused")) == []
    reference = SentenceTransformerEncoder(runtime="fp32").encode(SENTENCES)
    assert np.sum(plain.encode(SENTENCES) * reference, axis=1).min() >= 0.99999


@pytest.mark.model
def test_a_corrupt_onnx_export_is_exported_again(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    first = SentenceTransformerEncoder(runtime="onnx")
    export = first._onnx.path
    assert export.is_file() and export.is_relative_to(tmp_path / "cache")
    reference = first.encode(SENTENCES)
    export.write_bytes(b"not a model")  # a disk that filled up mid-write, say
    again = SentenceTransformerEncoder(runtime="onnx")
    assert "exporting it again" in caplog.text
    assert np.allclose(again.encode(SENTENCES), reference, atol=1e-6)


@pytest.mark.model
def test_an_unwritable_cache_fails_a_forced_onnx_and_lets_auto_use_torch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(blocker))
    with pytest.raises(ConfigError, match="CASEMATCH_CACHE_DIR") as error:
        SentenceTransformerEncoder(runtime="onnx")
    assert str(blocker) in str(error.value)
    import casematch.encoders.runtime

    monkeypatch.setattr(casematch.encoders.runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    fallback = SentenceTransformerEncoder(runtime="auto")
    assert fallback.runtime == "fp32"
    assert "encoding with torch fp32" in caplog.text
    assert fallback.encode(SENTENCES[:1]).shape == (1, fallback.dimension)


def test_onnx_runs_only_mean_pooled_normalised_models(tmp_path: Path) -> None:
    import json

    from casematch.encoders import packaged_model_dir
    from casematch.encoders.onnx import supports

    packaged = packaged_model_dir()
    if packaged is not None:
        assert supports(packaged)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    (tmp_path / "1_Pooling").mkdir()
    pooling = tmp_path / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"pooling_mode_mean_tokens": True}), encoding="utf-8")
    assert supports(tmp_path)
    pooling.write_text(json.dumps({"pooling_mode_cls_token": True}), encoding="utf-8")
    assert not supports(tmp_path)
    (tmp_path / "modules.json").write_text(json.dumps(modules[:2]), encoding="utf-8")
    assert not supports(tmp_path)  # no Normalize: vectors would not be unit length
    (tmp_path / "modules.json").write_text("{broken", encoding="utf-8")
    assert not supports(tmp_path)


# ---- the runtime trial: each job gets the runtime measured fastest that passes the gate ----

def _timings(table: dict[str, tuple[float, float, float]]):  # type: ignore[no-untyped-def]
    from casematch.encoders.trial import Measurement

    calls: list[str] = []

    def measure(model: str, device: str) -> dict[str, Measurement]:
        calls.append(model)
        return {name: Measurement(name, batch, query, cosine)
                for name, (batch, query, cosine) in table.items()}

    return measure, calls


# (texts/s in batches, ms per query, min cosine to fp32), shaped like the measurements of
# benchmarks/RESULTS.md on the two machines.
AVX2_ONLY = {"fp32": (100.0, 12.0, 1.0), "onnx": (175.0, 4.5, 1.0)}
AVX512_BF16 = {"fp32": (100.0, 11.8, 1.0), "bf16": (250.0, 8.3, 0.99998),
               "onnx": (175.0, 3.6, 1.0)}


@pytest.mark.parametrize(("table", "batch", "query"), [
    (AVX2_ONLY, "onnx", "onnx"),
    (AVX512_BF16, "bf16", "onnx"),
    # bf16 fastest everywhere but off fp32 beyond the gate: never chosen.
    ({**AVX512_BF16, "bf16": (400.0, 1.0, 0.99)}, "onnx", "onnx"),
    # No ONNX Runtime: torch for both jobs.
    ({"fp32": (100.0, 11.8, 1.0), "bf16": (250.0, 8.3, 0.99998)}, "bf16", "bf16"),
])
def test_each_job_gets_the_runtime_its_trial_measured_fastest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        table: dict[str, tuple[float, float, float]], batch: str, query: str) -> None:
    from casematch.encoders.trial import runtime_for

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    measure, calls = _timings(table)
    assert runtime_for("batch", model="m", measure=measure) == (batch, "measured")
    assert runtime_for("query", model="m", measure=measure) == (query, "measured")
    assert len(calls) == 1  # measured once, then read from the cache


def test_the_trial_is_cached_per_machine_and_libraries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import casematch.encoders.trial as trial

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    measure, calls = _timings(AVX512_BF16)
    trial.runtime_for("batch", model="m", measure=measure)
    trial.runtime_for("batch", model="m", measure=measure)
    assert len(calls) == 1
    assert (tmp_path / "runtimes.json").exists()
    # Another CPU (an index folder and cache copied to another machine): measured again.
    monkeypatch.setattr(trial, "cpu_model", lambda: "AMD EPYC 7B12 (AVX2 only)")
    other, calls_other = _timings(AVX2_ONLY)
    assert trial.runtime_for("batch", model="m", measure=other) == ("onnx", "measured")
    assert len(calls_other) == 1
    # Another onnxruntime version: measured again too.
    monkeypatch.setattr(trial, "library_version",
                        lambda name: "9.9" if name == "onnxruntime" else None)
    trial.runtime_for("query", model="m", measure=other)
    assert len(calls_other) == 2


def test_an_explicit_runtime_wins_over_the_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.encoders.trial import runtime_for

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    measure, calls = _timings(AVX512_BF16)
    assert runtime_for("query", "fp32", model="m", measure=measure) == ("fp32", "setting")
    assert runtime_for("batch", "onnx", model="m", measure=measure) == ("onnx", "setting")
    assert runtime_for("batch", model="m", device="cuda", measure=measure) == ("fp32", "device")
    assert calls == []


def test_a_trial_that_fails_falls_back_to_the_cpu_flags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.encoders.trial import runtime_for

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))

    def broken(model: str, device: str) -> dict[str, object]:
        raise ImportError("no torch here")

    runtime, source = runtime_for("batch", model="m", measure=broken)  # type: ignore[arg-type]
    assert (runtime, source) == (choose_runtime("auto"), "cpu flags")
    assert not (tmp_path / "runtimes.json").exists()  # nothing recorded: tried again later


def test_the_trial_record_names_the_measured_speeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.encoders.trial import runtime_for, runtime_summary

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    assert runtime_summary("m")["measured"] is False
    measure, _ = _timings(AVX512_BF16)
    runtime_for("batch", model="m", measure=measure)
    summary = runtime_summary("m")
    assert summary["choice"] == {"batch": "bf16", "query": "onnx"}
    assert summary["measurements"]["onnx"]["query_ms"] == 3.6
    assert runtime_summary("m", "fp32")["choice"] == {"batch": "fp32", "query": "fp32"}
