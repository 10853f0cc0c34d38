"""The torch-free query path: same chunks and vectors as torch, no torch in the process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_case

from casematch.encoders.bundle import INDEX_FOLDER, OnnxQueryEncoder
from casematch.errors import ConfigError

# Mixed lengths, case, whitespace and scripts, the way support cases come.
TEXTS = [
    "Upgrade Netty to fix a CVE",
    "  VPN drops every 10 minutes\n\tsince the client update  ",
    "Ünïcödé naïve café: the ﬁle name breaks the export (ß, İ, 東京)",
    "Printer on floor 3 shows PAPER JAM but the tray is empty.",
    " ".join(["The connector retries the Postgres handshake and logs SSL SYSCALL EOF."] * 60),
    " ".join(f"step {i}: restart the pod, check the readiness probe and the lock" for i in
             range(120)),
    "x",
]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def query_encoder(real_encoder):  # type: ignore[no-untyped-def]
    return OnnxQueryEncoder(real_encoder.query_bundle(), real_encoder.name)


@pytest.mark.model
def test_query_encoder_chunks_like_the_torch_encoder(real_encoder,  # type: ignore[no-untyped-def]
                                                     query_encoder) -> None:
    for text in TEXTS:
        assert query_encoder.chunk(text) == real_encoder.chunk(text)
    assert len(real_encoder.chunk(TEXTS[5])) > 2  # the long ones really are windowed


@pytest.mark.model
def test_query_vectors_match_torch_fp32(real_encoder,  # type: ignore[no-untyped-def]
                                        query_encoder) -> None:
    fp32 = real_encoder.with_runtime("fp32")
    pieces = [piece for text in TEXTS for piece in real_encoder.chunk(text)]
    # One at a time (as a query is embedded) and in one batch (as `update` embeds).
    single = np.vstack([query_encoder.encode([p]) for p in pieces])
    batch = query_encoder.encode(pieces)
    reference = fp32.encode(pieces)
    assert single.dtype == np.float32 and single.shape == reference.shape
    assert np.allclose(np.linalg.norm(single, axis=1), 1.0, atol=1e-5)
    assert float((single * reference).sum(axis=1).min()) >= 0.9999
    assert float((batch * reference).sum(axis=1).min()) >= 0.9999


@pytest.fixture(scope="module")
def built_index(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> Path:  # type: ignore[no-untyped-def]
    from casematch.index import CaseIndex

    root = tmp_path_factory.mktemp("cold") / "idx"
    cases = [make_case("netty", "Upgrade Netty to fix CVE-2023-44487", "bumped netty to 4.1.100"),
             make_case("vpn", "VPN drops every 10 minutes", "raise the IKE lifetime"),
             make_case("printer", "Printer jams on floor 3", "replace the fuser")]
    index, _ = CaseIndex.build(cases, root, encoder=real_encoder)
    index.close()
    return root


@pytest.mark.model
def test_a_build_copies_the_query_model_into_the_index(built_index: Path) -> None:
    folder = built_index / INDEX_FOLDER
    config = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    assert config["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert config["version"] == 3 and config["int8"] is True
    # The weights beside the graph, where ONNX Runtime maps them instead of parsing them.
    assert (folder / "model.onnx").stat().st_size < 1_000_000
    assert (folder / "model.onnx.data").stat().st_size > 80_000_000
    assert (folder / "tokenizer.json").exists()
    # The int8 graph holds only its 8-bit weights; the rest it reads from model.onnx.data.
    assert (folder / "model-int8.onnx").stat().st_size < 1_000_000
    assert 5_000_000 < (folder / "model-int8.onnx.data").stat().st_size < 20_000_000


@pytest.mark.model
def test_the_int8_query_graph_passes_the_trial_gate(  # type: ignore[no-untyped-def]
        real_encoder, query_encoder) -> None:
    from casematch.encoders.trial import MIN_COSINE

    int8 = OnnxQueryEncoder(query_encoder.folder, real_encoder.name, weights="int8")
    assert int8.weights == "int8" and query_encoder.weights == "fp32"
    assert _graph_ops(int8).count("MatMulNBits") == 18
    assert "MatMulNBits" not in _graph_ops(query_encoder)
    pieces = [p for text in TEXTS for p in query_encoder.chunk(text)]
    assert int8.chunk(TEXTS[5]) == query_encoder.chunk(TEXTS[5])
    cosines = (int8.encode(pieces) * query_encoder.encode(pieces)).sum(axis=1)
    # Close to fp32, and not identical: the int8 graph really runs.
    assert float(cosines.min()) >= MIN_COSINE
    assert float(cosines.min()) < 0.999999


_INT8_PROBE = """
import logging, sys
from pathlib import Path
from casematch.encoders.bundle import _write_int8_graph
root = logging.getLogger()
before = (list(root.handlers), root.level)
made = _write_int8_graph(Path(sys.argv[1]))
print(made, (list(root.handlers), root.level) == before)
"""


@pytest.mark.model
def test_writing_the_int8_graph_leaves_the_callers_logging_alone(
        query_encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # ONNX Runtime's quantizer module calls logging.basicConfig(level=INFO) when first
    # imported: in a fresh process, so that this import is the first.
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in ("model.onnx", "model.onnx.data"):
        shutil.copyfile(query_encoder.folder / name, folder / name)
    result = subprocess.run([sys.executable, "-c", _INT8_PROBE, str(folder)],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
    assert "INFO" not in result.stderr  # nor does it log every node it visits
    assert (folder / "model-int8.onnx.data").stat().st_size > 5_000_000


def _graph_ops(encoder: OnnxQueryEncoder) -> list[str]:
    import onnx

    graph = "model-int8.onnx" if encoder.weights == "int8" else "model.onnx"
    model = onnx.load(str(encoder.folder / graph), load_external_data=False)
    return [node.op_type for node in model.graph.node]


@pytest.mark.model
def test_a_bundle_without_an_int8_graph_answers_with_fp32(  # type: ignore[no-untyped-def]
        real_encoder, query_encoder, tmp_path: Path) -> None:
    folder = tmp_path / "v2"
    shutil.copytree(query_encoder.folder, folder)
    config = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    (folder / "encoder.json").write_text(json.dumps({**config, "version": 2, "int8": None}),
                                         encoding="utf-8")
    for name in ("model-int8.onnx", "model-int8.onnx.data"):
        (folder / name).unlink()
    old = OnnxQueryEncoder(folder, real_encoder.name, weights="int8")
    assert old.weights == "fp32"
    assert np.array_equal(old.encode(TEXTS[:4]), query_encoder.encode(TEXTS[:4]))


def _inline_bundle(real_encoder, source: Path,  # type: ignore[no-untyped-def]
                   folder: Path) -> Path:
    """The bundle at `source` as version 1 (weights inside model.onnx), as earlier releases
    wrote it."""
    from casematch.encoders.onnx import OnnxTransformer

    folder.mkdir(parents=True)
    export = OnnxTransformer(real_encoder._model, Path(real_encoder._model_dir)).path
    shutil.copyfile(export, folder / "model.onnx")
    shutil.copyfile(source / "tokenizer.json", folder / "tokenizer.json")
    config = json.loads((source / "encoder.json").read_text(encoding="utf-8"))
    (folder / "encoder.json").write_text(json.dumps({**config, "version": 1}),
                                         encoding="utf-8")
    return folder


@pytest.mark.model
def test_a_version_1_query_model_still_answers_alike(  # type: ignore[no-untyped-def]
        real_encoder, query_encoder, tmp_path: Path) -> None:
    old = OnnxQueryEncoder(_inline_bundle(real_encoder, query_encoder.folder, tmp_path / "v1"),
                           real_encoder.name)
    pieces = [p for text in TEXTS for p in query_encoder.chunk(text)]
    assert np.array_equal(old.encode(pieces), query_encoder.encode(pieces))


@pytest.mark.model
def test_the_cache_writes_a_version_1_query_model_again(  # type: ignore[no-untyped-def]
        real_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.encoders.bundle import cached_bundle_dir

    source = real_encoder.query_bundle()
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = cached_bundle_dir(real_encoder.name)
    # An older release's bundle, for the same model files: version 1 alone makes it stale.
    config = json.loads((_inline_bundle(real_encoder, source, folder) / "encoder.json")
                        .read_text(encoding="utf-8"))
    assert config["version"] == 1
    assert real_encoder.query_bundle() == folder
    assert json.loads((folder / "encoder.json").read_text(encoding="utf-8"))["version"] == 3
    assert (folder / "model.onnx.data").stat().st_size > 80_000_000


@pytest.mark.model
def test_truncated_query_weights_are_refused_with_the_fix(  # type: ignore[no-untyped-def]
        real_encoder, tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    shutil.copytree(real_encoder.query_bundle(), folder)
    with open(folder / "model.onnx.data", "r+b") as weights:
        weights.truncate(1_000_000)
    with pytest.raises(ConfigError, match=r"model\.onnx.*delete .* to export it again"):
        OnnxQueryEncoder(folder, real_encoder.name)


_PROBE = """
import sys
from casematch.cli import main
try:
    main()
finally:
    # numpy.ma is no weight, but ~10 ms of a cold query that nothing in a query needs;
    # so are the thread judge's patterns (casematch.resolution, ~35 ms to compile).
    heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers", "numpy.ma",
                               "casematch.resolution") if m in sys.modules)
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _query(index: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, "query", "Netty CVE upgrade", "--index", str(index),
         "-k", "1", "--json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=300, check=False)


@pytest.mark.model
def test_casematch_query_imports_no_torch(built_index: Path) -> None:
    result = _query(built_index, {})
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr or result.stderr.rstrip().endswith("HEAVY=")
    assert json.loads(result.stdout)["matches"][0]["case"]["id"] == "netty"


@pytest.mark.model
def test_a_copied_index_answers_from_its_own_query_model(
        built_index: Path, tmp_path: Path) -> None:
    from casematch.encoders import trial

    copy = tmp_path / "elsewhere"
    shutil.copytree(built_index, copy)
    # A machine that never exported the model: an empty cache, a recorded trial only.
    cache = tmp_path / "fresh-cache"
    env = {"CASEMATCH_CACHE_DIR": str(cache)}
    os.environ["CASEMATCH_CACHE_DIR"], saved = str(cache), os.environ["CASEMATCH_CACHE_DIR"]
    try:
        trial.run_trial("sentence-transformers/all-MiniLM-L6-v2", measure=lambda m, d: {
            "fp32": trial.Measurement("fp32", 1.0, 9.0, 1.0),
            "onnx": trial.Measurement("onnx", 2.0, 3.0, 1.0)})
    finally:
        os.environ["CASEMATCH_CACHE_DIR"] = saved
    result = _query(copy, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith("HEAVY=")
    assert not (cache / "query").exists()  # nothing exported: the index's copy served


def test_an_incomplete_query_model_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "encoder.json").write_text('{"version": 1, "model": "m"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="rebuild the index or delete the folder"):
        OnnxQueryEncoder(tmp_path, "m")


def test_a_query_model_for_another_model_is_not_used(tmp_path: Path) -> None:
    from casematch.encoders import query_model_folder

    folder = tmp_path / "idx" / INDEX_FOLDER
    folder.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json"):
        (folder / name).write_text("x", encoding="utf-8")
    (folder / "encoder.json").write_text('{"version": 1, "model": "other"}', encoding="utf-8")
    assert query_model_folder("other", tmp_path / "idx") == folder
    assert query_model_folder("mine", tmp_path / "idx") is None


def _record(choice: str) -> None:
    from casematch.encoders import trial

    trial.run_trial("m-fallback", measure=lambda m, d: {
        "fp32": trial.Measurement("fp32", 1.0, 9.0 if choice == "onnx" else 1.0, 1.0),
        "onnx": trial.Measurement("onnx", 2.0, 3.0 if choice == "onnx" else 5.0, 1.0)})


def test_auto_queries_fall_back_to_torch_when_onnx_cannot_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import FakeEncoder

    import casematch.encoders as encoders

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(encoders, "_QUERY_ENCODERS", {})
    _record("onnx")
    asked: list[str] = []

    def fake_load_encoder(model: str, *, device: str = "cpu", runtime: str = "auto",
                          **kwargs: object) -> FakeEncoder:
        asked.append(runtime)
        if runtime == "onnx":
            raise ConfigError("cannot write the ONNX export to /nowhere")
        return FakeEncoder()

    monkeypatch.setattr(encoders, "load_encoder", fake_load_encoder)
    assert isinstance(encoders.load_query_encoder("m-fallback"), FakeEncoder)
    assert asked == ["onnx", "fp32"]
    # Forced onnx: the error reaches the user, naming the folder.
    with pytest.raises(ConfigError, match="/nowhere"):
        encoders.load_query_encoder("m-fallback", runtime="onnx")


def test_queries_use_torch_where_the_trial_found_it_faster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import FakeEncoder

    import casematch.encoders as encoders

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(encoders, "_QUERY_ENCODERS", {})
    _record("fp32")
    asked: list[str] = []

    def fake_load_encoder(model: str, *, device: str = "cpu", runtime: str = "auto",
                          **kwargs: object) -> FakeEncoder:
        asked.append(runtime)
        return FakeEncoder()

    monkeypatch.setattr(encoders, "load_encoder", fake_load_encoder)
    encoders.load_query_encoder("m-fallback")
    assert asked == ["fp32"]


def test_a_damaged_query_model_in_the_index_falls_back_under_auto(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import FakeEncoder

    import casematch.encoders as encoders

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(encoders, "_QUERY_ENCODERS", {})
    _record("onnx")
    folder = tmp_path / "idx" / INDEX_FOLDER
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not a graph")
    (folder / "tokenizer.json").write_text("{broken", encoding="utf-8")
    (folder / "encoder.json").write_text(json.dumps(
        {"version": 1, "model": "m-fallback", "dimension": 8, "max_seq_length": 16,
         "pad_id": 0, "pad_token": "[PAD]"}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"delete .* to export it again"):
        OnnxQueryEncoder(folder, "m-fallback")

    def fake_load_encoder(model: str, *, device: str = "cpu", runtime: str = "auto",
                          **kwargs: object) -> FakeEncoder:
        if runtime == "onnx":
            raise ConfigError("no ONNX Runtime here")
        return FakeEncoder()

    monkeypatch.setattr(encoders, "load_encoder", fake_load_encoder)
    found = encoders.load_query_encoder("m-fallback", index_root=tmp_path / "idx")
    assert isinstance(found, FakeEncoder)
    with pytest.raises(ConfigError):
        encoders.load_query_encoder("m-fallback", runtime="onnx", index_root=tmp_path / "idx")
