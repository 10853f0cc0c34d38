"""Shared fixtures: a fake encoder for index mechanics, the real model for ranking."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from casematch.cases import Case

try:
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings
except ImportError:  # the dev extra is not installed: tests/test_fuzz.py skips itself
    pass
else:
    # "ci" (the default): a fixed seed and a small budget, so every run tries the same
    # examples quickly. "long" (`pytest --hypothesis-profile=long tests/test_fuzz.py`):
    # many more random examples, to run by hand.
    _fuzz = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
    hypothesis_settings.register_profile("ci", max_examples=20, derandomize=True,
                                         print_blob=True, **_fuzz)  # type: ignore[arg-type]
    hypothesis_settings.register_profile("long", max_examples=1000,
                                         **_fuzz)  # type: ignore[arg-type]
    hypothesis_settings.load_profile("ci")


class FakeEncoder:
    """Bag of hashed words: deterministic, instant, and similar texts share words.

    Good enough to test index mechanics; ranking quality is asserted with the real model.
    """

    name = "fake-bag-of-words"
    dimension = 64

    def __init__(self, window_words: int = 50) -> None:
        self.window_words = window_words
        self.encoded: list[str] = []

    def chunk(self, text: str) -> list[str]:
        words = text.split()
        if len(words) <= self.window_words:
            return [text]
        step = self.window_words
        return [" ".join(words[i : i + step]) for i in range(0, len(words), step)]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension
                out[row, bucket] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The ONNX export of the real model goes to a folder of this test run, never the user's
    # cache; subprocesses started by tests inherit it and reuse the one export.
    previous = os.environ.get("CASEMATCH_CACHE_DIR")
    os.environ["CASEMATCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    _record_runtime_choice()
    yield
    if previous is None:
        os.environ.pop("CASEMATCH_CACHE_DIR", None)
    else:
        os.environ["CASEMATCH_CACHE_DIR"] = previous


def _record_runtime_choice() -> None:
    # Tests must not pay for (or depend on) a timed runtime trial: record the choice the
    # CPU-flag rule makes for batches, and onnx for queries, as if measured. The trial
    # itself is tested with faked timings (test_embedding.py).
    from casematch.encoders import DEFAULT_MODEL_NAME, choose_runtime, trial

    def measure(model: str, device: str) -> dict[str, trial.Measurement]:
        batch = choose_runtime("auto", device=device)
        speeds = {"fp32": (1.0, 10.0), "bf16": (1.0, 10.0), "onnx": (1.0, 1.0)}
        speeds[batch] = (9.0, speeds[batch][1])
        return {name: trial.Measurement(name, b, q, 1.0) for name, (b, q) in speeds.items()}

    # No session timings either: the query encoder keeps its default threads.
    trial.run_trial(DEFAULT_MODEL_NAME, "cpu", measure=measure,
                    measure_sessions=lambda model, device: trial.SessionTimings({}, None))


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def real_encoder():  # type: ignore[no-untyped-def]
    from casematch.encoders import load_encoder

    return load_encoder("default")


def make_case(case_id: str, problem: str, resolution: str = "", **kwargs: object) -> Case:
    return Case(id=case_id, problem=problem, resolution=resolution,
                resolved=kwargs.pop("resolved", bool(resolution)), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    # A query process puts torch on one thread for the whole process
    # (`serve_queries_on_one_thread`); tests that build with the real model afterwards
    # should not pay for that.
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    yield
    torch = sys.modules.get("torch")
    if torch and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
    sbert = sys.modules.get("casematch.encoders.sbert")
    if sbert is not None:
        sbert._ONE_THREAD = False  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _slack_watchers_stopped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # `build_app` starts a thread that checks Slack's Web API every few seconds until the
    # app is stopped. Tests drop their app (and the local Slack it talks to) without
    # serving it, so without this the thread outlives its fake Slack and warns later.
    app = sys.modules.get("casematch.slack.app")
    if app is None:
        yield
        return
    started: list[object] = []
    original = app.Responders.watch_slack

    def watch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(app.Responders, "watch_slack", watch)
    yield
    for responders in started:
        responders.stopped.set()  # type: ignore[attr-defined]
