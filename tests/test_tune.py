"""`casematch tune` with the real model: switch, keep the base, revert, copy, eval's model line.

Runs are a few training steps on a small corpus: what is tested is the mechanics around
training (held-out comparison, atomic switch, offline loading from the index folder), not
how much training lifts ranking (benchmarks/quality.py measures that on real data).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_case

from casematch.cases import Case
from casematch.cli import cli
from casematch.encoders import DEFAULT_MODEL_NAME
from casematch.index import CaseIndex, read_tuning
from casematch.storage.generations import current_generation
from casematch.tune import TuneOptions, case_pairs, heldout_mrr, revert_model, tune

pytestmark = pytest.mark.model

PRODUCTS = ["printer", "VPN client", "mail server", "laptop dock", "wiki", "build farm",
            "payroll app", "badge reader", "video bridge", "backup job", "CRM export",
            "SSO portal"]
SYMPTOMS = [("is offline after the update", "roll back driver 4.2 and reboot"),
            ("rejects my password", "reset the account in the directory"),
            ("is very slow since Monday", "the cache disk was full; cleaned it"),
            ("crashes on start", "delete the stale lock file and restart")]


def corpus() -> list[Case]:
    cases = []
    for p, product in enumerate(PRODUCTS):
        for s, (symptom, fix) in enumerate(SYMPTOMS):
            title = f"The {product} {symptom}"
            cases.append(make_case(f"c{p}-{s}", f"{title}. Users on floor {p + s} noticed it "
                                   f"first; ticket raised by the {product} team.",
                                   f"{fix} ({product}).", title=title))
    return cases


def build(path: Path, cases: list[Case], real_encoder) -> Path:  # type: ignore[no-untyped-def]
    CaseIndex.build(cases, path, encoder=real_encoder)[0].close()
    return path


SHORT = TuneOptions(batch_size=8, max_steps=2, holdout=0.2)


def test_pairs_from_a_case() -> None:
    case = make_case("a", "Printer offline. It stopped after the update.", "Reboot it.",
                     title="Printer offline")
    assert case_pairs(case) == [
        ("Printer offline", "It stopped after the update."),
        ("Printer offline. It stopped after the update.", "Reboot it."),
    ]
    assert case_pairs(make_case("b", "No title, no fix.")) == []


def test_heldout_mrr_ranks_each_query_against_every_candidate() -> None:
    eye = np.eye(3, dtype=np.float32)
    assert heldout_mrr(eye, eye, [0, 1, 2]) == 1.0
    # Query 0 matches candidate 1 best: its own candidate comes second.
    swapped = np.array([[0.6, 0.8, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    assert heldout_mrr(swapped, eye, [0, 1, 2]) == pytest.approx((0.5 + 1 + 1) / 3)
    # A candidate excluded for a query (itself, another of its relevant cases) does not
    # count against it.
    assert heldout_mrr(swapped, eye, [0, 1, 2], [[1], [], []]) == 1.0


def test_batches_never_repeat_a_text_and_keep_every_labelled_pair() -> None:
    from casematch.tune import _batches

    distinct = [(f"q{n}", f"case {n}") for n in range(10)]
    assert _batches(distinct, 4) == [distinct[0:4], distinct[4:8], distinct[8:10]]
    # Five labelled queries for each of three cases: each case's text may appear once a
    # batch, so every pair still trains, in batches of three.
    labelled = [(f"question {n} about {c}", f"case {c}") for n in range(5) for c in "abc"]
    batches = _batches(labelled, 4)
    assert sorted(p for batch in batches for p in batch) == sorted(labelled)
    for batch in batches:
        texts = [t for pair in batch for t in pair]
        assert len(texts) == len(set(texts))


def test_held_out_labels_rank_their_case_among_others_of_the_index() -> None:
    from casematch.cases import LabelledQuery
    from casematch.tune import _labelled_heldout

    cases = corpus()
    held = [LabelledQuery("printer down", ("c0-0", "c0-1"), exclude=("c0-2",)),
            LabelledQuery("slow wiki", ("c4-2",))]
    heldout = _labelled_heldout(held, cases[:3], cases, seed=1)
    assert heldout.queries == ["printer down", "slow wiki"]
    by_text = {c.search_text(): c.id for c in cases}
    pool = [by_text[text] for text in heldout.candidates]
    assert [pool[g] for g in heldout.gold] == ["c0-0", "c4-2"]
    # Every case of this small index is a candidate, each once.
    assert sorted(pool) == sorted(c.id for c in cases)
    # The first query's other relevant case and its excluded one are set aside for it only.
    assert sorted(pool[n] for n in heldout.excluded[0]) == ["c0-1", "c0-2"]
    assert heldout.excluded[1] == []


def test_tune_switches_to_a_model_inside_the_index_and_reverts(
        tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    root = build(tmp_path / "index", corpus(), real_encoder)
    before = current_generation(root)
    # A negative margin switches whatever the comparison says: the switch mechanics.
    report = tune(root, options=TuneOptions(batch_size=8, max_steps=2, holdout=0.2,
                                            min_gain=-1.0))
    assert report.decision == "tuned"
    assert report.model.startswith("models/tuned-") and (root / report.model).is_dir()
    assert set(report.heldout) == {"base", "tuned"} and report.pairs_heldout > 0
    # A few dozen pairs: "auto" plans the most passes; max_steps still cuts them short.
    assert report.epochs == 4 and report.steps == report.steps_planned == 2
    assert current_generation(root) != before
    with CaseIndex.open(root) as index:
        assert index.manifest["model"] == report.model  # relative: a copied index opens
        assert index.search("the printer is offline after the update", k=1)
    tuning = read_tuning(root)
    assert tuning["base_model"] == DEFAULT_MODEL_NAME
    assert tuning["runs"][-1]["decision"] == "tuned"

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.rmtree(root)
    with CaseIndex.open(copy) as index:
        assert index.search("badge reader rejects password", k=1)[0].case.id.startswith("c7")
        # Updates embed new cases with the tuned model (no re-embedding of the rest).
        updated, result = index.update([make_case("new", "The wiki is down again.",
                                                  "Restarted it.")])
        assert result.embedded == 1 and updated.manifest["model"] == report.model
        updated.close()

    reverted = revert_model(copy)
    assert reverted.decision == "reverted"
    with CaseIndex.open(copy) as index:
        assert index.manifest["model"] == DEFAULT_MODEL_NAME
        assert len(index) == len(corpus()) + 1
    with pytest.raises(Exception, match="already uses its base model"):
        revert_model(copy)


def test_keeps_the_base_when_tuning_cannot_win(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    # Each title is the rest of its problem but for a "!": the base model already ranks
    # every held-out pair first (MRR 1.0), so no tuned model can beat it.
    cases = [make_case(f"e{n}", f"{text}\n\n{text}!", title=text, resolved=True)
             for n, text in enumerate(f"The {p} {s}" for p in PRODUCTS for s, _ in SYMPTOMS)]
    root = build(tmp_path / "index", cases, real_encoder)
    before = current_generation(root)
    report = tune(root, options=SHORT)
    assert report.heldout["base"] == pytest.approx(1.0)
    assert report.decision == "kept-base" and report.model == DEFAULT_MODEL_NAME
    assert report.tuned_model is None
    assert current_generation(root) == before
    assert not (root / "models").exists() or not list((root / "models").iterdir())


def test_cli_dry_run_then_eval_names_the_model(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    root = build(tmp_path / "index", corpus(), real_encoder)
    before = current_generation(root)
    runner = CliRunner()
    result = runner.invoke(cli, ["tune", "--index", str(root), "--dry-run", "--max-steps", "1",
                                 "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["decision"] == "dry-run" and report["heldout"]["base"] > 0
    assert current_generation(root) == before and not read_tuning(root)

    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "VPN client rejects my password",
                                   "relevant": ["c1-1"]}) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["eval", str(queries), "--index", str(root), "--json"],
                           catch_exceptions=False)
    assert json.loads(result.output)["model"] == {"model": DEFAULT_MODEL_NAME, "kind": "base"}
    result = runner.invoke(cli, ["eval", str(queries), "--index", str(root)],
                           catch_exceptions=False)
    assert result.output.startswith(f"Model: {DEFAULT_MODEL_NAME} (base)")


def test_ctrl_c_during_training_leaves_the_index_untouched(
        tmp_path: Path, real_encoder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import casematch.tune

    root = build(tmp_path / "index", corpus(), real_encoder)
    before = current_generation(root)

    def interrupted(*_args: object, **_kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(casematch.tune, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(root, options=SHORT)
    assert current_generation(root) == before and not read_tuning(root)
    assert not (root / "models").exists() or not list((root / "models").iterdir())


def test_tune_table_in_the_config(tmp_path: Path) -> None:
    from casematch.config import Settings
    from casematch.errors import ConfigError

    config = tmp_path / "casematch.toml"
    config.write_text("[tune]\nepochs = 2\nlearning_rate = 3e-5\n", encoding="utf-8")
    settings = Settings.load(config, env={})
    assert settings.tune == {"epochs": 2, "learning_rate": 3e-5}
    assert TuneOptions(**settings.tune).epochs == 2
    config.write_text("[tune]\nepoch = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[tune\]: unknown key\(s\) epoch"):
        Settings.load(config, env={})
    config.write_text('[tune]\nloss = "mnrl"\nmini_batch = 4\nsymmetric = false\n'
                      'precision = "fp32"\ncheckpoint_every = 3\nlabel_repeats = 1\n',
                      encoding="utf-8")
    options = TuneOptions(**Settings.load(config, env={}).tune)
    assert (options.loss, options.mini_batch, options.symmetric, options.precision,
            options.checkpoint_every, options.label_repeats) == ("mnrl", 4, False, "fp32", 3, 1)
    with pytest.raises(ConfigError, match="label_repeats"):
        TuneOptions(label_repeats=0)
    config.write_text('[tune]\nsymmetric = "false"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="symmetric"):
        Settings.load(config, env={})


@pytest.mark.parametrize(("bf16_speed", "expected"), [(30.0, True), (5.0, False)])
def test_auto_precision_follows_the_machines_measured_bf16_speed(
        monkeypatch: pytest.MonkeyPatch, bf16_speed: float, expected: bool) -> None:
    from casematch import tune as tune_module
    from casematch.encoders import trial

    record = {"measurements": {
        "fp32": {"batch_texts_per_s": 10.0, "passed": True},
        "bf16": {"batch_texts_per_s": bf16_speed, "passed": True}}}
    monkeypatch.setattr(trial, "cached_trial", lambda model, device="cpu": record)
    assert tune_module._bf16_measured_faster("some-model") is expected


def test_a_scheduled_tune_is_due_when_never_run_or_old_enough(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from casematch.index import write_tuning
    from casematch.tune import tune_due

    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert tune_due(tmp_path, 7, now=now)  # never tuned
    write_tuning(tmp_path, {"runs": [
        {"decision": "kept-base", "date": (now - timedelta(days=9)).isoformat()},
        {"decision": "tuned", "date": (now - timedelta(days=3)).isoformat()}]})
    assert not tune_due(tmp_path, 7, now=now)  # the latest run counts, whatever it decided
    assert tune_due(tmp_path, 3, now=now)


def test_reindex_runs_the_scheduled_tune_only_when_due(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import FakeEncoder

    import casematch.sync.reindex
    import casematch.tune
    from casematch.tune import TuneReport

    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "1", "problem": "printer jam", "resolution": "fuser"}\n',
                     encoding="utf-8")
    config = tmp_path / "casematch.toml"
    config.write_text(f'[index]\npath = "idx"\n[tune]\nevery_days = 7\nepochs = 1\n'
                      f'[[sources]]\ntype = "jsonl"\npath = "{cases}"\n', encoding="utf-8")
    monkeypatch.setattr(casematch.sync.reindex, "load_encoder", lambda *a, **k: FakeEncoder())
    runs: list[object] = []

    def fake_tune(path: object, **kwargs: object) -> TuneReport:
        runs.append(kwargs["options"])
        casematch.index.write_tuning(Path(str(path)), {"runs": [
            {"decision": "kept-base", "date": "2099-01-01T00:00:00+00:00"}]})
        return TuneReport(base_model="m", model="m", tuned_model=None, decision="kept-base")

    monkeypatch.setattr(casematch.tune, "tune", fake_tune)
    first = CliRunner().invoke(cli, ["reindex", "--config", str(config), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.splitlines()[-1])["tune"]["decision"] == "kept-base"
    assert runs == [TuneOptions(epochs=1)]  # every_days is the schedule, not an option
    again = CliRunner().invoke(cli, ["reindex", "--config", str(config), "--json"])
    assert again.exit_code == 0 and "tune" not in json.loads(again.stdout.splitlines()[-1])
    assert len(runs) == 1  # not due again


RESUMABLE = TuneOptions(batch_size=8, max_steps=4, holdout=0.2, min_gain=-1.0,
                        checkpoint_every=0)


def test_ctrl_c_saves_training_and_a_rerun_resumes_where_it_stopped(
        tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    straight = tune(build(tmp_path / "straight", corpus(), real_encoder), options=RESUMABLE)
    assert straight.resumed_from == 0 and straight.steps == 4

    root = build(tmp_path / "index", corpus(), real_encoder)
    before = current_generation(root)
    work = root / "models" / ".tune-work"

    def ctrl_c_after_two(done: int, _total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        tune(root, options=RESUMABLE, on_step=ctrl_c_after_two, say=said.append)
    assert json.loads((work / "state.json").read_text())["step"] == 2
    assert "training saved at step 2 of 4" in said[-1]
    assert current_generation(root) == before and not read_tuning(root)

    steps: list[int] = []
    resumed = tune(root, options=RESUMABLE, say=said.append,
                   on_step=lambda done, _total: steps.append(done))
    assert "Resuming training from the checkpoint at step 2 of 4." in said
    assert resumed.resumed_from == 2 and steps == [3, 4] and resumed.steps == 4
    # Weights, optimiser, schedule and dropout state all came back: the same model as an
    # uninterrupted run.
    assert resumed.heldout["tuned"] == pytest.approx(straight.heldout["tuned"], abs=1e-6)
    assert resumed.decision == "tuned" and not work.exists()
    assert read_tuning(root)["runs"][-1]["resumed_from"] == 2


def test_periodic_checkpoints_survive_a_crash_and_other_settings_start_fresh(
        tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    root = build(tmp_path / "index", corpus(), real_encoder)
    work = root / "models" / ".tune-work"
    every_two = TuneOptions(batch_size=8, max_steps=4, holdout=0.2, checkpoint_every=2)

    def crash_at_three(done: int, _total: int) -> None:
        if done == 3:  # not a Ctrl-C: nothing saves on the way out
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        tune(root, options=every_two, on_step=crash_at_three)
    assert json.loads((work / "state.json").read_text())["step"] == 2

    said: list[str] = []
    other = TuneOptions(batch_size=8, max_steps=4, holdout=0.2, learning_rate=3e-5)
    report = tune(root, options=other, dry_run=True, say=said.append)
    assert report.resumed_from == 0 and report.steps == 4
    assert any("starting fresh" in line for line in said)
    assert not work.exists()  # a finished run leaves no checkpoint behind


def test_settings_out_of_range_fail_before_any_training(tmp_path: Path) -> None:
    from casematch.config import Settings
    from casematch.errors import ConfigError

    for bad, named in ((dict(max_tokens=8), "max_tokens = 8"),
                       (dict(max_minutes=0.0), "max_minutes = 0.0"),
                       (dict(max_minutes=-1.0), "max_minutes = -1.0"),
                       (dict(batch_size=1), "batch_size = 1"),
                       (dict(holdout=0.0), "holdout = 0.0"),
                       (dict(loss="triplet"), "loss = 'triplet'"),
                       (dict(precision="fp16"), "precision = 'fp16'")):
        with pytest.raises(ConfigError, match=rf"\[tune\] {named}: use "):
            TuneOptions(**bad)  # type: ignore[arg-type]
    config = tmp_path / "casematch.toml"
    config.write_text("[tune]\nmax_tokens = 128\nmax_minutes = 7.5\n", encoding="utf-8")
    options = TuneOptions(**Settings.load(config, env={}).tune)
    assert (options.max_tokens, options.max_minutes) == (128, 7.5)

    runner = CliRunner()
    help_text = runner.invoke(cli, ["tune", "--help"]).output
    assert "--max-tokens" in help_text and "--max-minutes" in help_text
    config.write_text("[tune]\nmax_tokens = 8\n", encoding="utf-8")
    result = runner.invoke(cli, ["tune", "--config", str(config), "--index",
                                 str(tmp_path / "none")])
    assert result.exit_code == 1 and "[tune] max_tokens = 8: use" in result.output
    result = runner.invoke(cli, ["tune", "--index", str(tmp_path), "--max-minutes", "0"])
    assert result.exit_code == 2 and "--max-minutes" in result.output


def test_max_tokens_cuts_training_texts_only(
        tmp_path: Path, real_encoder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import casematch.tune

    lengths: list[int] = []
    send = casematch.tune._to

    def recording(features: dict[str, object], device: object) -> dict[str, object]:
        lengths.append(int(features["input_ids"].shape[1]))  # type: ignore[attr-defined]
        return send(features, device)  # type: ignore[arg-type]

    monkeypatch.setattr(casematch.tune, "_to", recording)
    # The fixture's problems run past 16 tokens with the resolution: they are cut there.
    long_cases = [make_case(c.id, c.problem + " " + c.problem, c.resolution, title=c.title)
                  for c in corpus()]
    plain = tune(build(tmp_path / "plain", long_cases, real_encoder),
                 options=SHORT, dry_run=True)
    assert max(lengths) > 16
    lengths.clear()
    root = build(tmp_path / "index", long_cases, real_encoder)
    short = tune(root, options=TuneOptions(batch_size=8, max_steps=2, holdout=0.2,
                                           max_tokens=16, min_gain=-1.0))
    assert lengths and max(lengths) == 16
    # The held-out comparison ran at the model's own length (the base figure does not move)
    # and the saved model embeds the index at it too.
    assert short.heldout["base"] == pytest.approx(plain.heldout["base"], abs=1e-6)
    from sentence_transformers import SentenceTransformer

    saved = SentenceTransformer(str(root / short.model), device="cpu", local_files_only=True)
    assert saved.max_seq_length == 256


def test_a_time_cap_stops_training_and_still_compares(
        tmp_path: Path, real_encoder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import casematch.tune

    minutes = [0.0]
    monkeypatch.setattr(casematch.tune, "_clock", lambda: minutes[0] * 60)

    def a_minute_a_step(_done: int, _total: int) -> None:
        minutes[0] += 1

    root = build(tmp_path / "index", corpus(), real_encoder)
    said: list[str] = []
    capped = tune(root, options=TuneOptions(batch_size=8, max_steps=4, holdout=0.2,
                                            max_minutes=2, min_gain=-1.0),
                  on_step=a_minute_a_step, say=said.append)
    assert (capped.steps, capped.steps_planned, capped.stopped_by_time) == (2, 4, True)
    assert any("2-minute cap after 2 of 4 steps" in line for line in said)
    # Stopped early, it was still compared and switched through the comparison.
    assert set(capped.heldout) == {"base", "tuned"} and capped.decision == "tuned"
    assert read_tuning(root)["runs"][-1]["stopped_by_time"] is True

    # A cap reached before the first step leaves the base's weights: no win, no switch.
    fresh = build(tmp_path / "fresh", corpus(), real_encoder)
    before = current_generation(fresh)
    # The first reading sets the deadline; every later one is long past it.
    readings = iter([0.0])
    monkeypatch.setattr(casematch.tune, "_clock", lambda: next(readings, 1e9))
    none = tune(fresh, options=TuneOptions(batch_size=8, max_steps=4, holdout=0.2,
                                           max_minutes=1))
    assert none.steps == 0 and none.stopped_by_time
    assert none.heldout["tuned"] == pytest.approx(none.heldout["base"], abs=1e-6)
    assert none.decision == "kept-base" and current_generation(fresh) == before


@pytest.mark.parametrize(("base", "tuned", "has_labels", "wins"), [
    # Without labels the pairs decide.
    ({"pairs": 0.77, "labels": 0.0}, {"pairs": 0.87, "labels": 0.0}, False, True),
    ({"pairs": 0.77, "labels": 0.0}, {"pairs": 0.77, "labels": 0.0}, False, False),
    # Pairs at their ceiling (a small FAQ): a win on the held-out labels is enough.
    ({"pairs": 1.0, "labels": 0.90}, {"pairs": 1.0, "labels": 0.97}, True, True),
    # A loss on either measure vetoes a win on the other.
    ({"pairs": 0.77, "labels": 0.90}, {"pairs": 0.87, "labels": 0.89}, True, False),
    ({"pairs": 1.0, "labels": 0.90}, {"pairs": 0.98, "labels": 0.99}, True, False),
    # Ties on both are no reason to switch.
    ({"pairs": 1.0, "labels": 0.90}, {"pairs": 1.0, "labels": 0.90}, True, False),
])
def test_the_tuned_model_must_win_on_one_measure_and_lose_on_none(
        base: dict[str, float], tuned: dict[str, float], has_labels: bool, wins: bool) -> None:
    from casematch.tune import _wins

    assert _wins(base, tuned, has_labels, 0.0) is wins


@pytest.mark.parametrize("switches", [True, False])
def test_fusion_is_fitted_on_labels_the_tuned_model_never_saw(
        tmp_path: Path, real_encoder, monkeypatch: pytest.MonkeyPatch, switches: bool) -> None:  # type: ignore[no-untyped-def]
    import casematch.tune as tune_module
    from casematch.cases import LabelledQuery

    root = build(tmp_path / "index", corpus(), real_encoder)
    labels = [LabelledQuery(f"{product} trouble {n}", (f"c{p}-{n}",))
              for p, product in enumerate(PRODUCTS) for n in range(len(SYMPTOMS))]
    fitted: list[list[str]] = []
    monkeypatch.setattr(tune_module, "_wins", lambda *_args: switches)
    monkeypatch.setattr(tune_module, "_fit_fusion",
                        lambda _root, given: fitted.append([lb.query for lb in given]))
    report = tune(root, labels=labels, options=SHORT)
    assert report.decision == ("tuned" if switches else "kept-base")
    assert report.labels_train + report.labels_heldout == len(labels)
    # Tuned on most of the labels, the model is judged on the others only; the base model
    # trained on none of them, so every label counts.
    expected = report.labels_heldout if switches else len(labels)
    assert len(fitted) == 1 and len(fitted[0]) == report.fusion_labels == expected
    if switches:
        assert 0 < expected < len(labels)


def test_auto_epochs_give_a_small_index_more_passes_within_the_same_pairs() -> None:
    from casematch.tune import AUTO_PAIR_PASSES, MAX_AUTO_EPOCHS, planned_epochs

    assert planned_epochs(965, None) == 4  # SeaMonkey: 3,860 pairs in all
    assert planned_epochs(2247, None) == 1  # the 2,500-case budget corpus: one pass
    assert planned_epochs(1500, None) == 2
    assert planned_epochs(10, None) == MAX_AUTO_EPOCHS
    assert planned_epochs(50_000, None) == 1
    for pairs in (1, 333, 999, 1001, 1334, 2001, 4001):
        epochs = planned_epochs(pairs, None)
        assert epochs == 1 or epochs * pairs <= AUTO_PAIR_PASSES
    assert planned_epochs(965, 1) == 1 and planned_epochs(50_000, 3) == 3  # set: as set


def test_epochs_auto_from_the_config_and_the_command_line(tmp_path: Path) -> None:
    from casematch.cli import _tune_options
    from casematch.config import Settings
    from casematch.errors import ConfigError

    config = tmp_path / "casematch.toml"
    config.write_text('[tune]\nepochs = "auto"\n', encoding="utf-8")
    settings = Settings.load(config, env={})
    assert _tune_options(settings).epochs is None
    assert _tune_options(settings, epochs=3).epochs == 3
    config.write_text("[tune]\nepochs = 2\n", encoding="utf-8")
    assert _tune_options(Settings.load(config, env={}), epochs="auto").epochs is None
    assert _tune_options(Settings.load(config, env={})).epochs == 2
    for bad in ('"two"', "2.5", "true"):
        config.write_text(f"[tune]\nepochs = {bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="epochs"):
            Settings.load(config, env={})
    result = CliRunner().invoke(cli, ["tune", "--index", str(tmp_path / "none"),
                                      "--epochs", "0"])
    assert result.exit_code == 2 and "from 1 to 20, or auto" in result.output
