"""`casematch tune`: fine-tune the index's encoder on the index's own cases.

Every resolved case is training data that needs no labels: its title should land near
the rest of its problem, and its problem near its resolution. One epoch of in-batch
negatives contrastive loss (MultipleNegativesRankingLoss, both directions) over those
pairs teaches the encoder the team's vocabulary — product names, error strings, the way
people phrase a problem. Labelled queries (eval files, Slack votes) are added as
(query, case) pairs.

Never silently worse: about a tenth of the cases (and of the labels) is held out before
training, and base and tuned encoders are compared on it (MRR of each held-out query
against every held-out candidate). The tuned model is used only when it wins; otherwise
the index keeps its model and the report says so, with both figures.

The tuned model is written into the index folder (`models/tuned-<date>/`) and the manifest
names it relative to the index root, so the index stays self-contained: it loads offline,
and a copied index still opens. The run is recorded in `tuning.json` beside CURRENT (base
model, date, pairs, held-out figures, the fitted fusion weight), which generations do not
prune. Re-embedding goes through `IndexWriter`, so the switch is one atomic generation;
Ctrl-C before that leaves the index untouched.

Training is resumable: every few steps, and on Ctrl-C, the model, optimiser and schedule
are saved in `models/.tune-work/`, keyed by a digest of the base model, the settings and
the exact batches. A rerun with the same key continues from there (and says so); any
other key starts fresh. The folder is removed once a run has switched or kept the base.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from casematch.cases import Case, LabelledQuery
from casematch.encoders import DEFAULT_BATCH_SIZE, Encoder, resolve_model_path
from casematch.errors import CasematchError, ConfigError
from casematch.index import (
    MODELS_DIR,
    CaseIndex,
    IndexModel,
    read_tuning,
    write_tuning,
)
from casematch.search.fusion import Candidate, fit_weight
from casematch.storage.generations import check_unlocked
from casematch.storage.writer import IndexWriter, UpdateResult

# Fewer pairs than this teach nothing and leave nothing to hold out.
MIN_PAIRS = 8
# Held-out labelled queries rank their case among this many case texts at most: their own
# cases, the held-out cases, then others drawn from the index. Against their own cases
# alone every StackFAQ label ranked first with the base model, so no model could win
# there; the whole of a large index would double the comparison's cost.
LABEL_CANDIDATES = 500
# `epochs = None` ("auto"): as many passes over the training pairs as keep the passes within
# AUTO_PAIR_PASSES pairs in all, from 1 to MAX_AUTO_EPOCHS. A small index gets several
# passes and a large one a single pass in about the same time. On the 1,076 SeaMonkey
# reports (965 pairs) 1, 2, 3 and 4 passes gave dev MRR 0.650, 0.662, 0.676 and 0.681 and
# held-out MRR 0.879, 0.893, 0.886 and 0.895; the 2,500-case budget corpus (2,247 pairs)
# keeps its one pass and its 8-minute tune (RESULTS.md, "Tune settings, fourth round").
AUTO_PAIR_PASSES = 4000
MAX_AUTO_EPOCHS = 4


@dataclass(frozen=True, slots=True)
class TuneOptions:
    """Training settings; the defaults are the measured configuration (RESULTS.md)."""

    # Passes over the training pairs; None: `planned_epochs` chooses from their number.
    epochs: int | None = None
    batch_size: int = 32
    # 5e-5 rather than the usual 2e-5: with one short epoch (31 steps on 1,076 reports) the
    # larger steps lifted SeaMonkey's held-out MRR 0.844 -> 0.879 and R@10 0.881 -> 0.921
    # at the same cost (RESULTS.md, T4).
    learning_rate: float = 5e-5
    warmup: float = 0.1
    # Training only: each side of a pair is cut to this many tokens while training (never
    # above the model's own length). The held-out comparison and the index's embeddings
    # keep the model's length, so a shorter setting changes the cost of training, not
    # what the index stores. 128 halved training time and cut peak memory by 1.1 GB on
    # SeaMonkey against 256, with dev ranking within noise (RESULTS.md).
    max_tokens: int = 128
    # Share of cases (and of labels) kept out of training to compare the two encoders.
    holdout: float = 0.1
    seed: int = 13
    # Stop after this many steps (None: every batch of every epoch); tests keep runs short.
    max_steps: int | None = None
    # Stop training once it has run this many minutes (None: no cap). The model as trained
    # so far is still compared with the base on the held-out pairs and used only if it
    # wins; the comparison and the re-embedding come on top of the cap.
    max_minutes: float | None = None
    # The tuned model must beat the base by more than this held-out MRR to be used.
    min_gain: float = 0.0
    # "cached" (default): in-batch negatives computed in mini-batches (GradCache), so memory
    # is bounded by `mini_batch` without gradient checkpointing (peak 1.8 GB on 1,076
    # reports); "mnrl": one graph per batch, with checkpointing. Same loss, same ranking.
    loss: str = "cached"
    mini_batch: int = 8
    # Also rank each positive's anchor among the batch's anchors: similar-case search is
    # symmetric (a report against reports). With 2 epochs it lifted SeaMonkey R@10 to 0.93.
    symmetric: bool = True
    # "bf16": autocast matrix products to bfloat16 (on a CPU with native bf16, a step of the
    # cached loss takes ~40% less CPU); "fp32"; "auto": bf16 where this machine's runtime
    # trial measured bf16 faster than fp32.
    precision: str = "auto"
    # Save a resumable checkpoint every this many steps (0: only on Ctrl-C).
    checkpoint_every: int = 5
    # Each labelled pair (a label or a vote, with the case it names) is trained on this many
    # times per epoch, the cases' own pairs once: labels are few and say exactly what the
    # users want found. On StackFAQ, with half of the 630 queries as labels, the tune's own
    # held-out labels preferred 3 passes (epochs) to 1 (MRR 0.953 -> 0.984), and so did the
    # queries it never saw (RESULTS.md, "Learning from labels").
    label_repeats: int = 3

    def __post_init__(self) -> None:
        """Bad settings fail here, before minutes of loading and training.

        Raises:
            ConfigError: a setting out of its range, naming it and what to use.
        """
        checks: list[tuple[str, bool, str]] = [
            ("epochs", self.epochs is None or self.epochs >= 1,
             'a whole number of at least 1, or "auto"'),
            ("batch_size", self.batch_size >= 2,
             "a whole number of at least 2 (the other pairs of a batch are the negatives)"),
            ("learning_rate", self.learning_rate > 0, "a number above 0, such as 2e-5"),
            ("warmup", 0 <= self.warmup < 1, "a share from 0 to below 1, such as 0.1"),
            ("max_tokens", self.max_tokens >= 16, "a whole number of at least 16, such as 128"),
            ("holdout", 0 < self.holdout < 1,
             "a share above 0 and below 1, such as 0.1 (tune never switches unseen)"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1,
             "a whole number of at least 1, or leave it out"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0,
             "a number of minutes above 0, or leave it out"),
            ("loss", self.loss in ("cached", "mnrl"), '"cached" or "mnrl"'),
            ("mini_batch", self.mini_batch >= 1, "a whole number of at least 1"),
            ("precision", self.precision in ("auto", "bf16", "fp32"),
             '"auto", "bf16" or "fp32"'),
            ("checkpoint_every", self.checkpoint_every >= 0,
             "a whole number of steps, 0 for only on Ctrl-C"),
            ("label_repeats", self.label_repeats >= 1, "a whole number of at least 1"),
        ]
        for name, ok, use in checks:
            if not ok:
                raise ConfigError(f"[tune] {name} = {getattr(self, name)!r}: use {use}")


@dataclass
class TuneReport:
    base_model: str
    model: str  # the model the index uses after this run
    tuned_model: str | None  # where the tuned weights were written (None: discarded)
    decision: str  # "tuned", "kept-base", "dry-run", "reverted"
    cases: int = 0
    pairs_train: int = 0
    pairs_heldout: int = 0
    labels_train: int = 0
    labels_heldout: int = 0
    heldout: dict[str, float] = field(default_factory=dict)
    heldout_labels: dict[str, float] = field(default_factory=dict)
    lexical_weight: float | None = None
    fusion_labels: int = 0  # labels the fusion weight was fitted on
    epochs: int = 0  # passes over the training pairs planned (chosen when "auto")
    steps: int = 0  # training steps done (by this run and any it resumed)
    steps_planned: int = 0  # every batch of every epoch (or max_steps)
    stopped_by_time: bool = False  # training ended at max_minutes, before steps_planned
    resumed_from: int = 0  # training steps taken from an interrupted run's checkpoint
    train_seconds: float = 0.0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    generation: str = ""
    device: str = "cpu"
    date: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("heldout", "heldout_labels"):
            out[key] = {k: round(v, 4) for k, v in out[key].items()}
        for key in ("train_seconds", "seconds", "peak_rss_mb"):
            out[key] = round(out[key], 1)
        return out


Progress = Callable[[str], None]
# Called after each training step with (steps done, steps in all).
StepHook = Callable[[int, int], None]

# Inside the index's models folder, so a copied index carries its unfinished run along.
WORK_DIR = ".tune-work"
# What `max_minutes` is measured with (tests replace it to stop training at a set step).
_clock = time.monotonic


# ---- pairs --------------------------------------------------------------------------------


def planned_epochs(pairs: int, epochs: int | None) -> int:
    """Passes over `pairs` training pairs: `epochs` when set, else as many as fit in
    AUTO_PAIR_PASSES pairs (at least 1, at most MAX_AUTO_EPOCHS)."""
    if epochs is not None:
        return epochs
    return max(1, min(MAX_AUTO_EPOCHS, AUTO_PAIR_PASSES // max(1, pairs)))


def case_pairs(case: Case) -> list[tuple[str, str]]:
    """(anchor, positive) pairs a case yields without labels."""
    pairs = []
    title = case.title.strip()
    problem = case.problem.strip()
    rest = (problem[len(title):].lstrip(" .:-\n").strip() if title and problem.startswith(title)
            else problem)
    if title and rest and title != rest:
        pairs.append((title, rest))
    if problem and case.resolution.strip():
        pairs.append((_problem_text(case), case.resolution.strip()))
    return pairs


def _problem_text(case: Case) -> str:
    title = case.title.strip()
    problem = case.problem.strip()
    return problem if not title or problem.startswith(title) else f"{title}\n\n{problem}"


def _split(items: Sequence[Any], share: float, rng: random.Random) -> tuple[list[Any], list[Any]]:
    """(train, held out): `share` of the items, at least one of each when there are two."""
    order = list(items)
    rng.shuffle(order)
    if len(order) < 2 or share <= 0:
        return order, []
    held = min(len(order) - 1, max(1, round(len(order) * share)))
    return order[held:], order[:held]


def heldout_mrr(queries: np.ndarray, candidates: np.ndarray, gold: Sequence[int],
                excluded: Sequence[Sequence[int]] = ()) -> float:
    """Mean reciprocal rank of each query's own candidate among all candidates but those
    `excluded` for it (rows L2-normalised, so the inner product is the cosine)."""
    if len(gold) == 0:
        return 0.0
    scores = queries @ candidates.T
    for row, columns in enumerate(excluded):
        scores[row, list(columns)] = -np.inf
    own = scores[np.arange(len(gold)), np.asarray(gold)]
    ranks = 1 + (scores > own[:, None]).sum(axis=1)
    return float(np.mean(1.0 / ranks))


@dataclass
class _Heldout:
    queries: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    gold: list[int] = field(default_factory=list)
    # Per query, the candidates that do not count against it (its other relevant cases,
    # and itself where the query is a case).
    excluded: list[list[int]] = field(default_factory=list)

    def add(self, query: str, positive: str) -> None:
        self.queries.append(query)
        self.candidates.append(positive)
        self.gold.append(len(self.candidates) - 1)

    def score(self, encode: Callable[[list[str]], np.ndarray]) -> float:
        if not self.queries:
            return 0.0
        return heldout_mrr(encode(self.queries), encode(self.candidates), self.gold,
                           self.excluded)


def _labelled_heldout(labels: Sequence[LabelledQuery], held_cases: Sequence[Case],
                      cases: Sequence[Case], seed: int) -> _Heldout:
    """The held-out labels, each ranking one of its cases among a pool like a search's."""
    by_id = {c.id: c for c in cases}
    out = _Heldout()
    pool: list[str] = []
    for label in labels:
        out.queries.append(label.query)
        pool.append(next(r for r in label.relevant if r in by_id))
        out.gold.append(len(pool) - 1)
    # Its own generator: drawing from the run's would change which batches train.
    drawn = random.Random(seed).sample(list(cases), len(cases))
    named = set(pool)
    others = dict.fromkeys(c.id for c in [*held_cases, *drawn] if c.id not in named)
    pool += list(others)[:max(0, LABEL_CANDIDATES - len(pool))]
    out.candidates = [by_id[case_id].search_text() for case_id in pool]
    for label, gold in zip(labels, out.gold, strict=True):
        skip = set(label.exclude) | set(label.relevant)
        out.excluded.append([n for n, case_id in enumerate(pool)
                             if case_id in skip and n != gold])
    return out


# ---- the run -------------------------------------------------------------------------------


def tune(
    index_path: str | Path,
    *,
    labels: Sequence[LabelledQuery] = (),
    options: TuneOptions | None = None,
    dry_run: bool = False,
    device: str | None = None,
    runtime: str = "auto",
    progress: bool = False,
    say: Progress | None = None,
    ray_address: str | None = None,
    on_step: StepHook | None = None,
) -> TuneReport:
    """Fine-tune the index's encoder on its own cases; switch to it only if it wins.

    Training runs here (on a GPU when there is one); the re-embedding of every case with
    the tuned model goes to a Ray cluster when `ray_address` is given (`--ray`).

    Raises:
        IndexFormatError: no usable index at `index_path`.
        IndexLockedError: another process is writing the index.
        CasematchError: too few cases to train on.
    """
    started = time.perf_counter()
    options = options or TuneOptions()
    root = Path(index_path)
    say = say or (lambda _message: None)
    check_unlocked(root)
    rng = random.Random(options.seed)
    with CaseIndex.open(root) as index:
        current = index.manifest["model"]
        include_unresolved = bool(index.manifest.get("include_unresolved", False))
        cases = _all_cases(index)
    tuning = read_tuning(root)
    base_model = str(tuning.get("base_model") or current)
    device = device or _best_device()
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    report = TuneReport(base_model=base_model, model=current, tuned_model=None,
                        decision="dry-run" if dry_run else "kept-base", cases=len(cases),
                        device=device, date=datetime.now(UTC).isoformat(timespec="seconds"))

    train_cases, held_cases = _split([c for c in cases if c.resolved or include_unresolved],
                                     options.holdout, rng)
    train = [p for c in train_cases for p in case_pairs(c)]
    heldout = _Heldout()
    for case in held_cases:
        for query, positive in case_pairs(case):
            heldout.add(query, positive)
    by_id = {c.id: c for c in cases}
    usable = [lb for lb in labels if any(r in by_id for r in lb.relevant)]
    train_labels, held_labels = _split(usable, options.holdout, rng)
    # The copies of a labelled pair never share a batch (_batches): each repeat is a pass.
    train += [(label.query, by_id[r].search_text())
              for label in train_labels for r in label.relevant if r in by_id] \
        * options.label_repeats
    labelled = _labelled_heldout(held_labels, held_cases, cases, options.seed)
    report.pairs_train, report.pairs_heldout = len(train), len(heldout.queries)
    report.epochs = planned_epochs(len(train), options.epochs)
    report.labels_train, report.labels_heldout = len(train_labels), len(held_labels)
    if len(train) < MIN_PAIRS or not heldout.queries:
        raise CasematchError(
            f"{root}: only {len(train)} training pairs from {len(cases)} cases; tune needs "
            "a few dozen resolved cases with a title or a resolution"
        )

    model = _load_trainable(base_model, root, device)
    base_figures = _figures(model, heldout, labelled)
    say(f"held-out before tuning: MRR {base_figures['pairs']:.3f} on "
        f"{len(heldout.queries)} pairs" + (f", {base_figures['labels']:.3f} on "
                                             f"{len(held_labels)} labels" if held_labels else ""))
    tmp = root / MODELS_DIR / f".tmp-tuned-{os.getpid()}"
    try:
        train_started = time.perf_counter()
        run = _train(model, train, options, rng, progress=progress,
                     work=root / MODELS_DIR / WORK_DIR, key=base_model, say=say,
                     on_step=on_step)
        report.steps, report.steps_planned, report.resumed_from = run.done, run.planned, \
            run.resumed
        report.stopped_by_time = run.done < run.planned
        report.train_seconds = time.perf_counter() - train_started
        if report.stopped_by_time:
            say(f"Training stopped at the {options.max_minutes:g}-minute cap after "
                f"{run.done} of {run.planned} steps; comparing that model with the base.")
        tuned_figures = _figures(model, heldout, labelled)
        report.heldout = {"base": base_figures["pairs"], "tuned": tuned_figures["pairs"]}
        if held_labels:
            report.heldout_labels = {"base": base_figures["labels"],
                                     "tuned": tuned_figures["labels"]}
        wins = _wins(base_figures, tuned_figures, bool(held_labels), options.min_gain)
        if dry_run or not wins:
            report.decision = "dry-run" if dry_run else "kept-base"
            report.model = current
        else:
            name = _tuned_name(root, date)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            model.save(str(tmp))
            del model
            os.replace(tmp, root / name)
            report.tuned_model = report.model = name
            report.decision = "tuned"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if report.decision == "tuned":
        encoder = _on_ray(IndexModel.load(root, report.model, device=device, runtime=runtime),
                          root, report.model, ray_address)
        try:
            result = _reembed(root, encoder, cases, include_unresolved, progress=progress)
        except BaseException:
            # Nothing names the new folder yet: leave the index exactly as it was.
            shutil.rmtree(root / report.model, ignore_errors=True)
            raise
        report.generation = result.generation
    # Only now: an interrupted re-embedding reruns without training again.
    shutil.rmtree(root / MODELS_DIR / WORK_DIR, ignore_errors=True)
    if labels and not dry_run:
        # A model tuned on labels ranks them from memory, which makes dense alone look
        # best on them: the weight is fitted on the held-out labels, which it never saw
        # (RESULTS.md, "Learning from labels").
        unseen = held_labels if report.decision == "tuned" and train_labels else labels
        report.fusion_labels = len(unseen)
        report.lexical_weight = _fit_fusion(root, unseen)
    report.seconds = time.perf_counter() - started
    report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not dry_run:
        _record(root, tuning, report)
    return report


def revert_model(index_path: str | Path, *, device: str | None = None, runtime: str = "auto",
                 progress: bool = False, ray_address: str | None = None) -> TuneReport:
    """Return the index to the model it had before any tuning (re-embedding with it)."""
    started = time.perf_counter()
    root = Path(index_path)
    check_unlocked(root)
    tuning = read_tuning(root)
    with CaseIndex.open(root) as index:
        current = index.manifest["model"]
        include_unresolved = bool(index.manifest.get("include_unresolved", False))
        cases = _all_cases(index)
    base = tuning.get("base_model")
    if not base or base == current:
        raise ConfigError(f"{root}: the index already uses its base model {current!r}; "
                          "nothing to revert")
    device = device or _best_device()
    encoder = _on_ray(IndexModel.load(root, str(base), device=device, runtime=runtime),
                      root, str(base), ray_address)
    result = _reembed(root, encoder, cases, include_unresolved, progress=progress)
    report = TuneReport(base_model=str(base), model=str(base), tuned_model=None,
                        decision="reverted", cases=len(cases), generation=result.generation,
                        device=device, date=datetime.now(UTC).isoformat(timespec="seconds"),
                        seconds=time.perf_counter() - started)
    _record(root, tuning, report)
    return report


# ---- steps ---------------------------------------------------------------------------------


def _all_cases(index: CaseIndex) -> list[Case]:
    store = index.storage.store
    rowids = sorted(rowid for rowid, _digest in store.hashes().values())
    cases = store.cases_by_rowid(rowids)
    return [cases[r] for r in rowids]


def _best_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_trainable(model: str, root: Path, device: str) -> Any:
    """A sentence-transformers model to train (a fresh copy, never the shared encoder)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        from casematch.errors import MissingDependencyError

        raise MissingDependencyError(f"tune needs sentence-transformers ({exc})") from exc
    local = root / model
    path = str(local) if not Path(model).is_absolute() and local.is_dir() else \
        resolve_model_path(model)
    try:
        trainable = SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model {model!r} to tune it: {exc}") from exc
    # The model's own length stays: it is what the index embeds with (and what the held-out
    # comparison measures); only training cuts texts to `max_tokens`.
    return trainable


def _figures(model: Any, heldout: _Heldout, labelled: _Heldout) -> dict[str, float]:
    def encode(texts: list[str]) -> np.ndarray:
        vectors: np.ndarray = model.encode(texts, batch_size=DEFAULT_BATCH_SIZE,
                                           normalize_embeddings=True,
                                           convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32)

    model.eval()
    return {"pairs": heldout.score(encode), "labels": labelled.score(encode)}


def _wins(base: dict[str, float], tuned: dict[str, float], has_labels: bool,
          min_gain: float) -> bool:
    """Tuned must lose on neither held-out measure and beat base on one of them by more
    than `min_gain`.

    The labels are the users' own judgement of the task itself, so a win there is enough
    where the cases' own pairs cannot show one: on a small FAQ-like index the base is often
    already perfect on them (StackFAQ: MRR 1.000), and requiring a pair win would keep the
    base whatever the labels taught.
    """
    measures = ("pairs", "labels") if has_labels else ("pairs",)
    if any(tuned[m] < base[m] for m in measures):
        return False
    return any(tuned[m] > base[m] + min_gain for m in measures)


@dataclass(frozen=True, slots=True)
class _Run:
    done: int  # steps done in all (resumed ones included)
    planned: int  # steps the run would take without a time cap
    resumed: int  # steps taken from a checkpoint


def _train(model: Any, pairs: list[tuple[str, str]], options: TuneOptions, rng: random.Random,
           *, progress: bool, work: Path | None = None, key: str = "",
           say: Progress | None = None, on_step: StepHook | None = None) -> _Run:
    """Train `model` in place, with texts cut to `options.max_tokens`.

    With `work`, a checkpoint is saved there every `options.checkpoint_every` steps and on
    KeyboardInterrupt (then re-raised), and a checkpoint of the same run is resumed.
    """
    import torch

    length = model.max_seq_length
    model.max_seq_length = min(options.max_tokens, int(length or options.max_tokens))
    # Dropout draws from torch's global generator: seeded so that a run, and a resumed
    # run, is reproducible on CPU; forked so the caller's generator is left as it was.
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            return _train_steps(model, pairs, options, rng, progress=progress, work=work,
                                key=key, say=say, on_step=on_step)
    finally:
        # Back to the model's own length before it is compared, saved and embeds the index.
        model.max_seq_length = length


def _train_steps(model: Any, pairs: list[tuple[str, str]], options: TuneOptions, rng: random.Random,
                 *, progress: bool, work: Path | None = None, key: str = "",
                 say: Progress | None = None, on_step: StepHook | None = None) -> _Run:
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    say = say or (lambda _message: None)
    loss = _loss(model, options)
    batches: list[list[tuple[str, str]]] = []
    for _epoch in range(planned_epochs(len(pairs), options.epochs)):
        order = list(pairs)
        rng.shuffle(order)
        batches += _batches(order, options.batch_size)
    if options.max_steps is not None:
        batches = batches[:options.max_steps]
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(options.warmup * len(batches)), len(batches))
    if options.loss == "mnrl":
        # Recompute activations in the backward pass: a batch of 2 x 32 windows of 256
        # tokens otherwise keeps ~4 GB of attention maps alive (measured on StackFAQ), for
        # about a third more compute. The cached loss bounds memory by its mini-batches.
        transformer = getattr(model[0], "auto_model", None)
        if transformer is not None and getattr(transformer, "supports_gradient_checkpointing",
                                               False):
            transformer.gradient_checkpointing_enable()  # (renamed in transformers 6)
    digest = _run_digest(key, options, batches)
    done = 0
    if work is not None:
        done = _resume(work, digest, model, optimizer, schedule, len(batches), say)
    resumed = done
    model.train()
    device = model.device
    # sentence-transformers 6 renamed `tokenize` to `preprocess`.
    prepare = getattr(model, "preprocess", None) or model.tokenize
    bar = tqdm(batches, desc="Tuning", unit="step", disable=not progress, initial=done)
    autocast = _autocast(options.precision, str(device), key)
    # True while the weights are being changed: a checkpoint then would be half-updated.
    updating = False
    # The cap counts this process's training only (a resumed run gets the cap again).
    deadline = None if options.max_minutes is None else _clock() + options.max_minutes * 60
    try:
        for batch in batches[done:]:
            if deadline is not None and _clock() >= deadline:
                break
            features = [_to(prepare([pair[side] for pair in batch]), device) for side in (0, 1)]
            # The cached loss re-runs the forward pass inside backward(): both under autocast.
            with autocast():
                value = loss(features, None)
                value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            updating = True
            optimizer.step()
            schedule.step()
            updating = False
            optimizer.zero_grad()
            done += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value.item():.3f}")
            if work is not None and options.checkpoint_every > 0 and done < len(batches) \
                    and done % options.checkpoint_every == 0:
                _save_checkpoint(work, digest, model, optimizer, schedule, done, len(batches))
            if on_step is not None:
                on_step(done, len(batches))
    except KeyboardInterrupt:
        if work is not None and not updating and done > resumed:
            _save_checkpoint(work, digest, model, optimizer, schedule, done, len(batches))
            say(f"Interrupted: training saved at step {done} of {len(batches)}; "
                "run tune again to resume.")
        raise
    finally:
        bar.close()
    if work is not None and done > resumed:
        # Finished (or stopped at the time cap): a rerun, say after an interrupted
        # re-embedding, starts from here.
        _save_checkpoint(work, digest, model, optimizer, schedule, done, len(batches))
    model.eval()
    return _Run(done=done, planned=len(batches), resumed=resumed)


def _autocast(precision: str, device: str, model: str) -> Callable[[], Any]:
    import torch

    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"[tune] precision = {precision!r}: use \"auto\", \"bf16\" or "
                          "\"fp32\"")
    kind = "cuda" if device.startswith("cuda") else "cpu"
    enabled = precision == "bf16" or (precision == "auto" and kind == "cpu"
                                      and _bf16_measured_faster(model))
    return lambda: torch.autocast(kind, dtype=torch.bfloat16, enabled=enabled)


def _bf16_measured_faster(model: str) -> bool:
    """Whether this machine's runtime trial found bf16 faster than fp32 in batches.

    The same matrix products dominate a training step, so the encoder trial (cached per
    machine, run once if missing) decides; where bf16 is emulated it loses there too.
    """
    from casematch.encoders import trial

    try:
        record = trial.cached_trial(model) or trial.run_trial(model)
    except Exception as exc:  # no trial, no guess: full precision is always correct
        logging.getLogger(__name__).warning("runtime trial unavailable (%s); tuning in fp32",
                                            exc)
        return False
    measured = record.get("measurements", {})
    bf16, fp32 = measured.get("bf16"), measured.get("fp32")
    return bool(bf16 and fp32 and bf16.get("passed")
                and bf16["batch_texts_per_s"] > fp32["batch_texts_per_s"])


def _loss(model: Any, options: TuneOptions) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    directions: tuple[Any, ...] = ("query_to_doc", "doc_to_query") if options.symmetric \
        else ("query_to_doc",)
    if options.loss == "cached":
        return CachedMultipleNegativesRankingLoss(model, mini_batch_size=options.mini_batch,
                                                  directions=directions)
    if options.loss == "mnrl":
        return MultipleNegativesRankingLoss(model, directions=directions)
    raise ConfigError(f"[tune] loss = {options.loss!r}: use \"mnrl\" or \"cached\"")


def _run_digest(key: str, options: TuneOptions, batches: list[list[tuple[str, str]]]) -> str:
    """What a checkpoint belongs to: the base model, every setting that shapes training,
    and the exact batches (so a changed corpus or seed starts fresh)."""
    settings = {k: v for k, v in asdict(options).items()
                if k not in ("holdout", "min_gain", "checkpoint_every", "max_steps",
                             "max_minutes")}
    digest = hashlib.sha256(json.dumps([key, settings], sort_keys=True).encode())
    for batch in batches:
        for anchor, positive in batch:
            digest.update(anchor.encode("utf-8", "replace") + b"\0"
                          + positive.encode("utf-8", "replace") + b"\0")
        digest.update(b"\1")
    return digest.hexdigest()


def _resume(work: Path, digest: str, model: Any, optimizer: Any, schedule: Any, total: int,
            say: Progress) -> int:
    """Steps already done by a checkpoint of this very run (loaded into the objects), or 0
    (and any checkpoint of another run removed)."""
    import torch

    state_file = work / "state.json"
    if not state_file.is_file():
        return 0
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        usable = state.get("digest") == digest and 0 < int(state["step"]) <= total
    except (OSError, ValueError, KeyError, TypeError):
        usable = False
    if not usable:
        say("A checkpoint of another tune run (other cases or settings) was found: "
            "starting fresh.")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    saved = torch.load(work / "checkpoint.pt", map_location=model.device, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    torch.set_rng_state(saved["rng"])
    step = int(state["step"])
    say(f"Resuming training from the checkpoint at step {step} of {total}.")
    return step


def _save_checkpoint(work: Path, digest: str, model: Any, optimizer: Any, schedule: Any,
                     step: int, total: int) -> None:
    """Atomically: the checkpoint file first, then the state that names it."""
    import torch

    work.mkdir(parents=True, exist_ok=True)
    tmp = work / "checkpoint.pt.tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "rng": torch.get_rng_state()}, tmp)
    # The old state must not name the new file while it is half-written, nor the reverse.
    (work / "state.json").unlink(missing_ok=True)
    os.replace(tmp, work / "checkpoint.pt")
    state_tmp = work / "state.json.tmp"
    state_tmp.write_text(json.dumps({"digest": digest, "step": step, "total": total}),
                         encoding="utf-8")
    os.replace(state_tmp, work / "state.json")


def _batches(pairs: list[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    """Batches without a repeated text: a duplicate would be its own in-batch negative.

    A pair that repeats a text of the batch being filled waits for a later one. Labels
    repeat texts often (each of a case's labelled queries pairs with the case's text), so
    the waiting pairs fill further batches until none is left; keeping only those that fit
    the last batch dropped a third of StackFAQ's labelled pairs.
    """
    out: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    seen: set[str] = set()
    pending = pairs
    while pending:
        deferred: list[tuple[str, str]] = []
        for pair in pending:
            if pair[0] in seen or pair[1] in seen:
                deferred.append(pair)
                continue
            current.append(pair)
            seen.update(pair)
            if len(current) == size:
                out.append(current)
                current, seen = [], set()
        if len(deferred) == len(pending):
            # Every waiting pair clashes with the batch being filled: close it. A lone pair
            # has no negatives to learn from, so it is dropped rather than trained alone.
            if len(current) >= 2:
                out.append(current)
            current, seen = [], set()
        pending = deferred
    if len(current) >= 2:
        out.append(current)
    return out


def _to(features: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _tuned_name(root: Path, date: str) -> str:
    name = f"{MODELS_DIR}/tuned-{date}"
    number = 2
    while (root / name).exists():
        name = f"{MODELS_DIR}/tuned-{date}-{number}"
        number += 1
    return name


def _on_ray(encoder: Encoder, root: Path, model: str, ray_address: str | None) -> Encoder:
    """The re-embedding encoder: `encoder`, or the same model on a Ray cluster."""
    if not ray_address:
        return encoder
    from casematch.encoders.ray import RayEncoder

    inside = IndexModel.inside(root, model)
    return RayEncoder(encoder, ray_address, model_path=str(root / model) if inside else None)


def _reembed(root: Path, encoder: Encoder, cases: list[Case], include_unresolved: bool, *,
             progress: bool) -> UpdateResult:
    # A fresh writer: the model changed, so no vector can be reused.
    with IndexWriter(root, encoder, include_unresolved=include_unresolved,
                     fresh=True) as writer:
        for case in cases:
            writer.upsert(case)
        return writer.commit(progress=progress)


def _fit_fusion(root: Path, labels: Sequence[LabelledQuery]) -> float | None:
    """The lexical weight that ranks the labelled queries best on the current index."""
    from casematch.cases import Filters
    from casematch.search import SearchOptions
    from casematch.search.retrieve import gather

    with CaseIndex.open(root) as index:
        store = index.storage.store
        ids = {rowid: case_id for case_id, (rowid, _d) in store.hashes().items()}
        queries: list[tuple[dict[int, Candidate], set[int], int]] = []
        options = SearchOptions(collapse_above=None)
        for label in labels:
            found = gather(index.storage, index.encoder, label.query, options.candidates,
                           Filters(exclude=label.exclude), options)
            candidates = found.candidates
            gold = {r for r in candidates if ids[r] in label.relevant}
            if candidates and gold:
                queries.append((candidates, gold, found.query_terms))
    return fit_weight(queries) if queries else None


def _record(root: Path, tuning: dict[str, Any], report: TuneReport) -> None:
    runs = list(tuning.get("runs") or [])
    runs.append(report.to_dict())
    tuning = {**tuning, "base_model": report.base_model, "model": report.model, "runs": runs}
    if report.lexical_weight is not None:
        tuning["fusion"] = {**(tuning.get("fusion") or {}),
                            report.model: {"lexical_weight": report.lexical_weight,
                                           "fitted_on": report.fusion_labels,
                                           "date": report.date}}
    write_tuning(root, tuning)


def tune_due(index_path: str | Path, every_days: float, *, now: datetime | None = None) -> bool:
    """Whether a scheduled re-tune is due: no tune run yet, or the last one (tuned or
    kept the base) started `every_days` or more ago."""
    runs = read_tuning(Path(index_path)).get("runs") or []
    dates = [str(r["date"]) for r in runs if isinstance(r, dict) and r.get("date")]
    if not dates:
        return True
    try:
        last = datetime.fromisoformat(max(dates))
    except ValueError:
        return True
    now = now or datetime.now(UTC)
    return (now - last).total_seconds() >= every_days * 86400


def describe_model(index: CaseIndex) -> dict[str, Any]:
    """What `eval` prints beside its figures: the model, base or tuned, and its date."""
    model = str(index.manifest["model"])
    tuning = read_tuning(index.root)
    runs = [r for r in tuning.get("runs") or [] if r.get("model") == model
            and r.get("decision") == "tuned"]
    if runs:
        return {"model": model, "kind": "tuned", "base_model": tuning.get("base_model"),
                "tuned_at": runs[-1].get("date")}
    return {"model": model, "kind": "base"}
