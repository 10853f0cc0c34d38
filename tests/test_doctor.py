"""`casematch doctor`: a report of what matters, a non-zero exit with the fix when broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FakeEncoder, make_case

from casematch.cli import cli
from casematch.index import CaseIndex


@pytest.fixture
def index_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CASEMATCH_INDEX", "CASEMATCH_CONFIG", "CASEMATCH_RUNTIME", "SLACK_BOT_TOKEN",
                 "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    CaseIndex.build([make_case("1", "printer jam", "replace the fuser")], tmp_path / "idx",
                    encoder=FakeEncoder())
    return tmp_path / "idx"


def _doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", *args], env=env)
    return result.exit_code, result.output


def test_a_healthy_setup_reports_everything_and_exits_zero(index_dir: Path) -> None:
    code, output = _doctor("--index", str(index_dir), "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["ok"] is True and report["problems"] == []
    assert report["index"]["ok"] is True and report["index"]["cases"] == 1
    assert report["model"]["name"] == FakeEncoder().name
    assert report["versions"]["onnxruntime"] and report["versions"]["casematch"]
    assert report["threads"]["onnxruntime_query_threads"] >= 1
    assert report["cache"]["writable"] is True
    assert report["runtimes"]["setting"] == "auto"
    assert report["slack"]["configured"] is False


def test_a_missing_index_exits_non_zero_with_the_fix(tmp_path: Path, index_dir: Path) -> None:
    code, output = _doctor("--index", str(tmp_path / "nowhere"))
    assert code == 1
    assert "PROBLEM: index" in output and "casematch index SOURCES" in output


def test_an_explicit_runtime_is_reported_as_the_choice(index_dir: Path) -> None:
    code, output = _doctor("--index", str(index_dir), "--json",
                           env={"CASEMATCH_RUNTIME": "fp32"})
    assert code == 0, output
    runtimes = json.loads(output)["runtimes"]
    assert runtimes["choice"] == {"batch": "fp32", "query": "fp32"}
    assert "setting" in runtimes["source"]


def test_incomplete_slack_settings_name_what_to_set_but_no_secret(
        index_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "casematch.toml"
    config.write_text(f'[index]\npath = "{index_dir}"\n[slack]\nchannels = ["C1"]\n',
                      encoding="utf-8")
    secret = "xoxb-very-secret-token"
    code, output = _doctor("--config", str(config), env={"SLACK_BOT_TOKEN": secret})
    assert code == 1
    assert secret not in output
    assert "SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP)" in output
    code, output = _doctor("--config", str(config), "--json",
                           env={"SLACK_BOT_TOKEN": secret, "SLACK_APP_TOKEN": "xapp-secret"})
    assert code == 0, output
    assert secret not in output and "xapp-secret" not in output
    assert json.loads(output)["slack"]["complete"] is True


def test_stats_shows_the_runtime_each_job_gets(index_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["stats", "--index", str(index_dir), "--json"],
                                env={"CASEMATCH_RUNTIME": "bf16"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runtimes"]["choice"] == {"batch": "bf16", "query": "bf16"}
    result = CliRunner().invoke(cli, ["stats", "--index", str(index_dir)])
    assert "Runtimes: batch " in result.output


def test_threads_show_the_query_session_the_trial_chose(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.encoders import trial

    # The trial recorded for the index's model, as if timed here: 3 threads, spinning, int8.
    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(index_dir.parent / "cache"))
    onnx = {name: trial.Measurement(name, 100.0, q, 1.0)
            for name, q in (("fp32", 11.8), ("onnx", 3.6))}
    timings = trial.SessionTimings({(3, True, "fp32"): 5.5, (3, True, "int8"): 4.6,
                                    (1, False, "fp32"): 9.0}, 0.9995)
    trial.run_trial("fake-bag-of-words", measure=lambda m, d: onnx,
                    measure_sessions=lambda m, d: timings)
    code, output = _doctor("--index", str(index_dir), "--json")
    assert code == 0, output
    threads = json.loads(output)["threads"]
    assert threads["onnxruntime_query_threads"] == 3
    assert threads["onnxruntime_query_spinning"] is True
    assert threads["onnxruntime_query_weights"] == "int8"
    # A runtime set by name runs the fp32 graph whatever the trial chose.
    code, output = _doctor("--index", str(index_dir), "--json",
                           env={"CASEMATCH_RUNTIME": "onnx"})
    assert code == 0, output
    assert json.loads(output)["threads"]["onnxruntime_query_weights"] == "fp32"


def test_the_text_report_shows_the_measured_query_sessions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.doctor import Report, to_text
    from casematch.encoders import trial

    monkeypatch.setenv("CASEMATCH_CACHE_DIR", str(tmp_path))
    onnx = {name: trial.Measurement(name, 100.0, q, 1.0)
            for name, q in (("fp32", 11.8), ("onnx", 3.6))}
    timings = trial.SessionTimings({(2, True, "fp32"): 5.5, (2, True, "int8"): 4.6}, 0.998)
    record = trial.run_trial("m", measure=lambda m, d: onnx,
                             measure_sessions=lambda m, d: timings)
    text = to_text(Report(sections={"runtimes": trial.summary(record)}))
    # Faster, but past the gate: the fp32 graph serves, and the report says why.
    assert ("query session: 2 threads, spinning on, fp32 "
            "(int8 within cosine 0.998000 of fp32 (FAILED gate))") in text
    assert "    2 threads, spinning on, int8: 4.60 ms per query" in text
