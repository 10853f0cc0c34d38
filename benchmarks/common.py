"""Shared loaders of the real data in ../shared/data for the benchmarks (a stable API).

Every loader reads the public sets described in ../shared/data/README.md; `require_data()`
exits cleanly, with a message, where that folder is absent.
"""

from __future__ import annotations

import csv
import json
import platform
import re
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def require_data(data: Path = DATA) -> Path:
    """`data`, or exit 0 with a message saying what is missing."""
    if not (data / "swarms" / "disco").is_dir() or not (data / "eval").is_dir():
        print(f"skipped: {data} (swarms/disco, eval/) is absent; see ../shared/data/README.md",
              file=sys.stderr)
        raise SystemExit(0)
    return data


@dataclass
class RealCase:
    """A case as plain fields (no casematch import, so peers' venvs can use it too)."""

    id: str
    problem: str
    resolution: str = ""
    title: str = ""

    def text(self) -> str:
        return "\n\n".join(p for p in (self.problem, self.resolution) if p)


def _disco_threads(data: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(file stem, conversation id, message texts) for every DISCO conversation, in order."""
    for path in sorted((data / "swarms" / "disco").rglob("*.xml")):
        threads: dict[str, list[str]] = {}
        for message in ET.parse(path).getroot().iter("message"):
            text = (message.findtext("text") or "").strip()
            if text:
                threads.setdefault(message.get("conversation_id", ""), []).append(text)
        stem = path.parent.parent.name + "-" + path.parent.name
        for conversation, texts in threads.items():
            yield stem, conversation, texts


def disco_cases(data: Path = DATA, *, min_messages: int = 2) -> list[RealCase]:
    """DISCO swarm conversations: first message = problem, the replies = resolution."""
    return [RealCase(f"disco:{stem}:{conversation}", texts[0], "\n".join(texts[1:]))
            for stem, conversation, texts in _disco_threads(data) if len(texts) >= min_messages]


def disco_conversations(data: Path = DATA, *, min_messages: int = 2) -> list[list[str]]:
    """Every DISCO conversation as its message texts, in file order."""
    return [texts for _, _, texts in _disco_threads(data) if len(texts) >= min_messages]


def disco_messages(data: Path = DATA) -> list[str]:
    """Single chat messages: realistic short queries."""
    out = []
    for path in sorted((data / "swarms" / "disco").rglob("*.xml")):
        for message in ET.parse(path).getroot().iter("message"):
            text = (message.findtext("text") or "").strip()
            if len(text.split()) >= 6:
                out.append(text)
    return out


@dataclass
class DevSet:
    """A retrieval dev set: corpus cases and queries with their relevant case ids."""

    name: str
    cases: list[RealCase]
    queries: list[str] = field(default_factory=list)
    relevant: list[set[str]] = field(default_factory=list)
    # Ids a query must not retrieve (GitBugs: the report itself is in the corpus).
    exclude: list[set[str]] = field(default_factory=list)


def gitbugs(data: Path = DATA) -> DevSet:
    """GitBugs SeaMonkey: query = a report; relevant = its duplicates; corpus = the others."""
    folder = data / "eval" / "gitbugs-seamonkey"
    with (folder / "SeaMonkey_bugs.csv").open(encoding="utf-8", newline="") as handle:
        bugs = {row["Issue id"]: row for row in csv.DictReader(handle)}

    def body(row: dict[str, str]) -> str:
        return f"{row['Summary']}\n\n{row['Description']}".strip()

    dev = DevSet("GitBugs SeaMonkey", [RealCase(i, body(r), "", r["Summary"])
                                       for i, r in bugs.items()])
    with (folder / "SeaMonkey_bugs-combined.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            bug_id = row["Issue id"].strip()
            relevant = {d.strip() for d in row["Duplicate id"].split(",")
                        if d.strip() in bugs and d.strip() != bug_id}
            if bug_id in bugs and relevant:
                dev.queries.append(body(bugs[bug_id]))
                dev.relevant.append(relevant)
                dev.exclude.append({bug_id})
    return dev


def stackfaq(data: Path = DATA) -> DevSet:
    """StackFAQ: question = problem, answers = resolution, rephrasings = queries."""
    pairs = json.loads((data / "eval" / "stackfaq" / "stackfaq-dev.json")
                       .read_text(encoding="utf-8"))["root"]["qapair"]
    dev = DevSet("StackFAQ dev", [])
    for number, pair in enumerate(pairs):
        answers = pair["answer"] if isinstance(pair["answer"], list) else [pair["answer"]]
        dev.cases.append(RealCase(f"faq{number}", pair["question"], "\n\n".join(answers)))
        rephrasings = pair["rephr"] if isinstance(pair["rephr"], list) else [pair["rephr"]]
        for text in rephrasings:
            if text and text.strip() != "*":
                dev.queries.append(text)
                dev.relevant.append({f"faq{number}"})
                dev.exclude.append(set())
    return dev


def real_case_texts(data: Path = DATA) -> list[str]:
    """Every real case text available: DISCO conversations, GitBugs reports, StackFAQ."""
    texts = [c.text() for c in disco_cases(data)]
    texts += [c.text() for c in gitbugs(data).cases]
    texts += [c.text() for c in stackfaq(data).cases]
    return texts


def recall_at(ranked: list[list[str]], dev: DevSet, k: int = 10) -> float:
    """Mean share of each query's relevant ids found in its top k (excluded ids dropped)."""
    scores = []
    for ids, relevant, exclude in zip(ranked, dev.relevant, dev.exclude, strict=True):
        top = [i for i in ids if i not in exclude][:k]
        scores.append(len(relevant & set(top)) / len(relevant))
    return statistics.fmean(scores) if scores else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def machine() -> str:
    """'2 cores, AMD EPYC (flags: avx2, no avx512)' — what a reader needs to compare."""
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                      if line.startswith("Model name")), model)
    except OSError:
        pass
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
            if f in flags]
    import os

    return (f"{os.cpu_count()} cores, {model}, {platform.machine()}, "
            f"SIMD: {', '.join(simd) or 'none reported'}")


def read_section(title: str, results: Path = RESULTS) -> str | None:
    """The body of the `## title` section of RESULTS.md (None: no such section)."""
    if not results.exists():
        return None
    text = results.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\s*$", text, flags=re.MULTILINE)
    if not match:
        return None
    following = text.find("\n## ", match.end())
    return text[match.end():following if following >= 0 else len(text)].strip()


def write_section(title: str, body: str, results: Path = RESULTS) -> None:
    """Replace only the `## title` section of RESULTS.md; other sections belong to others."""
    heading = f"## {title}"
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    section = f"{heading}\n\n{body.strip()}\n"
    match = re.search(rf"^{re.escape(heading)}\s*$", text, flags=re.MULTILINE)
    if match:
        following = text.find("\n## ", match.end())
        rest = "\n" + text[following + 1:] if following >= 0 else ""
        text = text[:match.start()] + section + rest
    else:
        text = text.rstrip() + "\n\n" + section
    results.write_text(text, encoding="utf-8")
