"""The ONNX query session's threads and spinning: chosen by the trial's timings, then used."""

from __future__ import annotations

from pathlib import Path

import pytest

from casematch.encoders import trial

ONNX_WINS = {"fp32": trial.Measurement("fp32", 100.0, 11.8, 1.0),
             "onnx": trial.Measurement("onnx", 175.0, 3.6, 1.0)}
TORCH_WINS = {"fp32": trial.Measurement("fp32", 100.0, 2.0, 1.0),
              "onnx": trial.Measurement("onnx", 175.0, 3.6, 1.0)}


def _sessions(table: dict[tuple[int, bool], float]):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def measure(model: str, device: str) -> dict[tuple[int, bool], float]:
        calls.append(model)
        return dict(table)

    return measure, calls


# Shaped like the two measurements of benchmarks/RESULTS.md: a quiet 2-core machine where
# spinning threads help one query, and a busy one where they cost.
QUIET = {(1, False): 10.4, (1, True): 10.2, (2, False): 6.7, (2, True): 5.5}
BUSY = {(1, False): 11.0, (1, True): 12.5, (2, False): 11.2, (2, True): 17.0}


@pytest.mark.parametrize(("table", "want"), [(QUIET, (2, True)), (BUSY, (1, False))])
def test_the_query_session_is_the_one_the_trial_timed_fastest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        table: dict[tuple[int, bool], float], want: tuple[int, bool]) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    assert trial.query_session("m") == (None, False)  # nothing measured: the defaults
    sessions, calls = _sessions(table)
    record = trial.run_trial("m", measure=lambda m, d: ONNX_WINS, measure_sessions=sessions)
    assert calls == ["m"]
    assert trial.query_session("m") == want
    assert record["query_session"]["ms"]["1 thread, spinning off"] == table[(1, False)]
    assert trial.runtime_summary("m")["query_session"]["threads"] == want[0]


def test_sessions_are_not_timed_when_queries_run_on_torch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    sessions, calls = _sessions(QUIET)
    record = trial.run_trial("m", measure=lambda m, d: TORCH_WINS, measure_sessions=sessions)
    assert record["choice"]["query"] == "fp32"
    assert calls == [] and record["query_session"] is None
    assert trial.query_session("m") == (None, False)


def test_a_session_timing_that_fails_keeps_the_runtime_choice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))

    def broken(model: str, device: str) -> dict[tuple[int, bool], float]:
        raise RuntimeError("no ONNX query model in the cache")

    record = trial.run_trial("m", measure=lambda m, d: ONNX_WINS, measure_sessions=broken)
    assert record["choice"] == {"batch": "onnx", "query": "onnx"}
    assert trial.query_session("m") == (None, False)


@pytest.mark.model
def test_the_query_encoder_runs_with_the_measured_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_encoder) -> None:  # type: ignore[no-untyped-def]

    import casematch.encoders as encoders
    from casematch.encoders.bundle import OnnxQueryEncoder

    folder = real_encoder.query_bundle()
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(encoders, "query_model_folder", lambda name, root=None: folder)
    sessions, _ = _sessions({(1, False): 9.0, (1, True): 4.0, (2, False): 8.0, (2, True): 7.0})
    trial.run_trial(real_encoder.name, measure=lambda m, d: ONNX_WINS,
                    measure_sessions=sessions)
    encoders._QUERY_ENCODERS.clear()
    try:
        chosen = encoders.load_query_encoder(real_encoder.name)
        assert isinstance(chosen, OnnxQueryEncoder)
        assert (chosen.threads, chosen.spinning) == (1, True)
        # Spinning within a run only: the rest of the search needs the cores afterwards.
        options = chosen._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"
        # The same vectors whatever the threads: settings change speed only.
        default = OnnxQueryEncoder(folder, real_encoder.name)
        text = "VPN drops every 10 minutes since the client update"
        assert float((chosen.encode([text]) * default.encode([text])).sum()) >= 0.99999
    finally:
        encoders._QUERY_ENCODERS.clear()
