"""The ONNX query session's threads, spinning and weights: chosen by the trial's timings
(int8 only past the quality gate), then used."""

from __future__ import annotations

from pathlib import Path

import pytest

from casematch.encoders import trial

ONNX_WINS = {"fp32": trial.Measurement("fp32", 100.0, 11.8, 1.0),
             "onnx": trial.Measurement("onnx", 175.0, 3.6, 1.0)}
TORCH_WINS = {"fp32": trial.Measurement("fp32", 100.0, 2.0, 1.0),
              "onnx": trial.Measurement("onnx", 175.0, 3.6, 1.0)}


def _sessions(table: dict[tuple[int, bool], float], *,  # type: ignore[no-untyped-def]
              int8: dict[tuple[int, bool], float] | None = None,
              int8_cosine: float | None = None):
    calls: list[str] = []
    ms = {(t, s, "fp32"): v for (t, s), v in table.items()}
    ms.update({(t, s, "int8"): v for (t, s), v in (int8 or {}).items()})

    def measure(model: str, device: str) -> trial.SessionTimings:
        calls.append(model)
        return trial.SessionTimings(dict(ms), int8_cosine)

    return measure, calls


# Shaped like the two measurements of benchmarks/RESULTS.md: a quiet 2-core machine where
# spinning threads help one query, and a busy one where they cost.
QUIET = {(1, False): 10.4, (1, True): 10.2, (2, False): 6.7, (2, True): 5.5}
BUSY = {(1, False): 11.0, (1, True): 12.5, (2, False): 11.2, (2, True): 17.0}


@pytest.mark.parametrize(("table", "want"), [(QUIET, (2, True, "fp32")),
                                             (BUSY, (1, False, "fp32"))])
def test_the_query_session_is_the_one_the_trial_timed_fastest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        table: dict[tuple[int, bool], float], want: tuple[int, bool, str]) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    # Nothing measured: the defaults.
    assert trial.query_session("m") == (None, False, "fp32")
    sessions, calls = _sessions(table)
    record = trial.run_trial("m", measure=lambda m, d: ONNX_WINS, measure_sessions=sessions)
    assert calls == ["m"]
    assert trial.query_session("m") == want
    assert record["query_session"]["ms"]["1 thread, spinning off, fp32"] == table[(1, False)]
    assert trial.runtime_summary("m")["query_session"]["threads"] == want[0]


# int8 products: faster where the CPU has VNNI (4.6 against 5.5 ms on 2 EPYC cores),
# slower where it has not.
INT8_FASTER = {(1, False): 8.9, (1, True): 8.8, (2, False): 5.8, (2, True): 4.6}
INT8_SLOWER = {(1, False): 14.0, (1, True): 13.9, (2, False): 8.1, (2, True): 7.9}


@pytest.mark.parametrize(("int8", "cosine", "want"), [
    (INT8_FASTER, 0.9995, (2, True, "int8")),
    (INT8_FASTER, 0.998, (2, True, "fp32")),  # faster, but past the quality gate
    (INT8_FASTER, None, (2, True, "fp32")),  # no int8 graph to check: never chosen
    (INT8_SLOWER, 0.9995, (2, True, "fp32")),
])
def test_the_int8_graph_wins_only_faster_and_within_the_gate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        int8: dict[tuple[int, bool], float], cosine: float | None,
        want: tuple[int, bool, str]) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    sessions, _ = _sessions(QUIET, int8=int8, int8_cosine=cosine)
    record = trial.run_trial("m", measure=lambda m, d: ONNX_WINS, measure_sessions=sessions)
    assert trial.query_session("m") == want
    # A runtime set by name gets the fp32 graph whatever the trial chose.
    assert trial.query_session("m", runtime="onnx") == (*want[:2], "fp32")
    assert record["query_session"]["int8_min_cosine"] == cosine
    assert record["query_session"]["int8_passed"] is (cosine is not None and cosine >= 0.999)
    assert record["query_session"]["ms"]["2 threads, spinning on, int8"] == int8[(2, True)]


def test_sessions_are_not_timed_when_queries_run_on_torch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    sessions, calls = _sessions(QUIET)
    record = trial.run_trial("m", measure=lambda m, d: TORCH_WINS, measure_sessions=sessions)
    assert record["choice"]["query"] == "fp32"
    assert calls == [] and record["query_session"] is None
    assert trial.query_session("m") == (None, False, "fp32")


def test_a_session_timing_that_fails_keeps_the_runtime_choice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))

    def broken(model: str, device: str) -> trial.SessionTimings:
        raise RuntimeError("no ONNX query model in the cache")

    record = trial.run_trial("m", measure=lambda m, d: ONNX_WINS, measure_sessions=broken)
    assert record["choice"] == {"batch": "onnx", "query": "onnx"}
    assert trial.query_session("m") == (None, False, "fp32")


@pytest.mark.model
def test_the_query_encoder_runs_with_the_measured_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_encoder) -> None:  # type: ignore[no-untyped-def]

    import casematch.encoders as encoders
    from casematch.encoders.bundle import OnnxQueryEncoder

    folder = real_encoder.query_bundle()
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(encoders, "query_model_folder", lambda name, root=None: folder)
    sessions, _ = _sessions({(1, False): 9.0, (1, True): 4.0, (2, False): 8.0, (2, True): 7.0},
                            int8={(1, True): 3.5}, int8_cosine=0.9995)
    trial.run_trial(real_encoder.name, measure=lambda m, d: ONNX_WINS,
                    measure_sessions=sessions)
    encoders._QUERY_ENCODERS.clear()
    try:
        chosen = encoders.load_query_encoder(real_encoder.name)
        assert isinstance(chosen, OnnxQueryEncoder)
        assert (chosen.threads, chosen.spinning, chosen.weights) == (1, True, "int8")
        # A runtime set by name gets the fp32 graph, in the trial's threads.
        named = encoders.load_query_encoder(real_encoder.name, runtime="onnx")
        assert (named.threads, named.weights) == (1, "fp32")
        # Spinning within a run only: the rest of the search needs the cores afterwards.
        options = chosen._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"
        # The same vectors whatever the threads: threads and spinning change speed only.
        default = OnnxQueryEncoder(folder, real_encoder.name)
        text = "VPN drops every 10 minutes since the client update"
        assert float((named.encode([text]) * default.encode([text])).sum()) >= 0.99999
        assert float((chosen.encode([text]) * default.encode([text])).sum()) >= trial.MIN_COSINE
    finally:
        encoders._QUERY_ENCODERS.clear()


@pytest.mark.model
def test_the_trial_times_both_graphs_and_checks_int8_against_fp32(
        monkeypatch: pytest.MonkeyPatch, real_encoder) -> None:  # type: ignore[no-untyped-def]
    import casematch.encoders as encoders

    folder = real_encoder.query_bundle()
    monkeypatch.setattr(encoders, "query_model_folder", lambda name, root=None: folder)
    timings = trial.measure_query_sessions(real_encoder.name)
    assert {weights for _, _, weights in timings.ms} == {"fp32", "int8"}
    assert all(ms > 0 for ms in timings.ms.values())
    assert timings.int8_cosine is not None
    assert trial.MIN_COSINE <= timings.int8_cosine < 0.999999
